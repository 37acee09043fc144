"""``/api/agent/metrics``: pipeline metrics (read) and metric records (write)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, status

from reviewer.api.auth import Principal
from reviewer.api.common import UNPROCESSABLE, now_of, run_filters
from reviewer.api.deps import get_app, require_scope
from reviewer.app import App
from reviewer.ingest import store_records
from reviewer.metrics import pipeline_metrics
from store import MetricFilter
from store.timeutil import fmt_ts

router = APIRouter()


@router.get("/api/agent/metrics")
def get_metrics(
    f: MetricFilter = Depends(run_filters),  # noqa: B008
    app: App = Depends(get_app),  # noqa: B008
) -> dict[str, Any]:
    """Execution time p50/p95, success rates, breakdowns and usage (the seed's contract)."""
    return pipeline_metrics(app.store.view(now_of(app)), f)


@router.post("/api/agent/metrics", status_code=status.HTTP_201_CREATED)
def post_metrics(
    payload: Any = Body(...),  # noqa: B008
    app: App = Depends(get_app),  # noqa: B008
    _: Principal = Depends(require_scope("ingest")),  # noqa: B008
) -> dict[str, Any]:
    """Store one TaskMetric or a list of them; all or nothing, 422 naming the bad fields."""
    items = payload if isinstance(payload, list) else [payload]
    bad = [i for i, item in enumerate(items) if not isinstance(item, dict)]
    if bad or not items:
        raise HTTPException(
            UNPROCESSABLE,
            ["expected a TaskMetric JSON object or a non-empty list of them"],
        )
    report = store_records(app.store, "metrics", items, now=fmt_ts(now_of(app)))
    if report.rejected:
        raise HTTPException(UNPROCESSABLE, report.rejected)
    return {"stored": report.stored, **({"warnings": report.warnings} if report.warnings else {})}
