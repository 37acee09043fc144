"""What several routers share: the review clock and the run filters of the metrics routes."""

from __future__ import annotations

from datetime import datetime

from fastapi import HTTPException, Query

from reviewer.app import App
from store import MetricFilter
from store.timeutil import norm_ts

UNPROCESSABLE = 422  # the constant's name differs between Starlette versions


def now_of(app: App) -> datetime:
    return app.engine.clock()


def run_filters(
    since: str | None = Query(None, description="Runs created at or after (ISO 8601)."),
    until: str | None = Query(None, description="Runs created before (ISO 8601)."),
    task_type: str | None = Query(None),
    model: str | None = Query(None),
    executor: str | None = Query(None),
) -> MetricFilter:
    bounds: dict[str, str | None] = {}
    for name, value in (("since", since), ("until", until)):
        try:
            bounds[name] = norm_ts(value) if value else None
        except ValueError:
            raise HTTPException(
                UNPROCESSABLE,
                f"query parameter '{name}': expected an ISO 8601 time, like 2026-03-01T12:00:00Z"
                f" (got {value!r})",
            ) from None
    return MetricFilter(
        since=bounds["since"],
        until=bounds["until"],
        task_type=task_type,
        model=model,
        executor=executor,
    )
