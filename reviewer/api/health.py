"""``/healthz`` and the Prometheus ``/metrics`` of the reviewer itself."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reviewer.api.deps import get_app
from reviewer.app import App

router = APIRouter()


@router.get("/healthz")
def healthz(a: App = Depends(get_app)) -> dict[str, Any]:  # noqa: B008
    last = a.state.last_run()
    return {
        "status": "ok" if last is None or last.status == "ok" else "degraded",
        "last_run": last.public() if last else None,
    }


@router.get("/metrics")
def metrics(request: Request) -> Response:
    registry = request.app.state.prometheus  # the collector create_app registered
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
