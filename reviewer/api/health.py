"""``/healthz`` and the Prometheus ``/metrics`` of the reviewer itself."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reviewer.api.deps import get_app
from reviewer.app import App

router = APIRouter()


@router.get("/healthz")
def healthz(request: Request, a: App = Depends(get_app)) -> dict[str, Any]:  # noqa: B008
    from reviewer.schedule import review_lag
    from store.timeutil import parse_ts

    last = a.state.last_run()
    status = "ok" if last is None or last.status == "ok" else "degraded"
    lag = None
    if getattr(request.app.state, "scheduled", False):
        # Under the daemon: say so when cycles are not happening.
        latest = a.state.last_run(completed=False)
        lag = review_lag(a.config, parse_ts(latest.started_at) if latest else None, a.clock())
        if lag:
            status = "not-reviewing"
    body: dict[str, Any] = {"status": status, "last_run": last.public() if last else None}
    if lag:
        body["problem"] = lag
    return body


@router.get("/metrics")
def metrics(request: Request) -> Response:
    registry = request.app.state.prometheus  # the collector create_app registered
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
