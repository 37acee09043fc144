"""The HTTP API and the review page of ``reviewer run``: one ``APIRouter`` per resource.

Reads are open; anything that changes state needs the bearer token from
``REVIEWER_API_TOKEN`` or ``[reviewer] api_token`` (see ``deps``). A new
endpoint goes in its resource's module (a new resource: a new module, listed
in ``ROUTERS``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from reviewer.api import (
    agent_metrics,
    coverage,
    experiments,
    findings,
    goals,
    guard,
    health,
    page,
    proposals,
    runs,
    silences,
    test_results,
)
from reviewer.app import App
from reviewer.promexport import registry_for
from store.finite import dumps
from store.secrets import redact
from store.state import InvalidTransition, NotFound

# In the order their routes are matched.
ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    findings.router,
    proposals.router,
    runs.router,
    silences.router,
    test_results.router,
    coverage.router,
    page.router,
    agent_metrics.router,
    experiments.router,
    goals.router,
)


class FiniteJSONResponse(JSONResponse):
    """JSON with every non-finite float as null (never ``Infinity``, never a 500)."""

    def render(self, content: Any) -> bytes:
        return dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def create_app(app: App) -> FastAPI:
    """The FastAPI application serving one opened reviewer."""
    api = FastAPI(
        default_response_class=FiniteJSONResponse,
        title="reviewer",
        description="Auto-review of an AI-agent pipeline: findings, proposals, metrics.",
        version="0.1.0",
    )
    api.state.reviewer = app
    api.state.prometheus = registry_for(app)

    @api.exception_handler(NotFound)
    def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": redact(str(exc))}, status_code=404)

    @api.exception_handler(InvalidTransition)
    def _conflict(request: Request, exc: InvalidTransition) -> JSONResponse:
        return JSONResponse({"detail": redact(str(exc))}, status_code=409)

    guard.install(api, app.config.reviewer.api_max_body_bytes)
    for router in ROUTERS:
        api.include_router(router)
    return api


__all__ = ["ROUTERS", "create_app"]
