"""The HTTP API and the review page of ``reviewer run``: one ``APIRouter`` per resource.

Reads are open unless ``[reviewer] reads_require_token`` (then every router
but ``OPEN_ROUTERS`` needs a token with the ``read`` scope); anything that
changes state needs a bearer token with the scope its route names
(``deps.require_scope``). A new endpoint goes in its resource's module (a new
resource: a new module, listed in ``ROUTERS``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from reviewer.api import (
    agent_metrics,
    audit,
    controls,
    coverage,
    experiments,
    findings,
    goals,
    guard,
    health,
    incidents,
    page,
    proposals,
    report,
    runs,
    silences,
    test_results,
)
from reviewer.api.deps import require_read
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
    audit.router,
    controls.router,
    report.router,
    incidents.router,
)
# Never behind the read guard: liveness and Prometheus probes, and the page (its
# login decides what it shows).
OPEN_ROUTERS: tuple[APIRouter, ...] = (health.router, page.router)


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

    api.add_exception_handler(page.LoginFirst, page.login_redirect)
    guard.install(api, app.config.reviewer.api_max_body_bytes)
    for router in ROUTERS:
        guarded = router not in OPEN_ROUTERS
        api.include_router(router, dependencies=[Depends(require_read)] if guarded else [])
    return api


__all__ = ["OPEN_ROUTERS", "ROUTERS", "create_app"]
