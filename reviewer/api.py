"""The HTTP API and the review page of ``reviewer run``.

Reads are open; anything that changes state needs the bearer token from
``REVIEWER_API_TOKEN`` or ``[reviewer] api_token`` (see ``api_deps``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict

from reviewer.api_deps import get_app, require_token
from reviewer.api_pipeline import router as pipeline_router
from reviewer.app import App
from reviewer.promexport import registry_for
from store.state import InvalidTransition, NotFound
from store.timeutil import fmt_ts, parse_ts, utcnow

_pages = jinja2.Environment(
    loader=jinja2.PackageLoader("reviewer", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
)


class Decision(BaseModel):
    """Body of approve/reject: who decides and why (both optional)."""

    model_config = ConfigDict(extra="forbid")
    by: str | None = None
    reason: str | None = None


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: str
    subject: str
    until: str
    by: str | None = None
    comment: str


def _finding(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **json.loads(row["payload"]),
        "state": row["state"],
        "first_seen": row["first_seen"],
        "last_seen": row["last_seen"],
        "times_seen": row["times_seen"],
        "regressions": row["regressions"],
    }


def create_app(app: App) -> FastAPI:
    """The FastAPI application serving one opened reviewer."""
    api = FastAPI(
        title="reviewer",
        description="Auto-review of an AI-agent pipeline: findings, proposals, metrics.",
        version="0.1.0",
    )
    api.state.reviewer = app
    registry = registry_for(app)

    @api.exception_handler(NotFound)
    def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @api.exception_handler(InvalidTransition)
    def _conflict(request: Request, exc: InvalidTransition) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @api.get("/healthz")
    def healthz(a: App = Depends(get_app)) -> dict[str, Any]:  # noqa: B008
        last = a.state.last_run()
        return {
            "status": "ok" if last is None or last.status == "ok" else "degraded",
            "last_run": last.public() if last else None,
        }

    @api.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @api.get("/api/findings")
    def findings(
        state: str = Query("open", pattern="^(open|resolved|all)$"),
        rule: str | None = None,
        limit: int = Query(500, ge=1, le=5000),
        a: App = Depends(get_app),  # noqa: B008
    ) -> list[dict[str, Any]]:
        rows = a.state.list_findings(None if state == "all" else state, rule, limit)
        return [_finding(r) for r in rows]

    @api.get("/api/proposals")
    def proposals(
        state: str | None = None,
        rule: str | None = None,
        limit: int = Query(500, ge=1, le=5000),
        a: App = Depends(get_app),  # noqa: B008
    ) -> list[dict[str, Any]]:
        return [p.public() for p in a.state.proposals(state=state, rule=rule, limit=limit)]

    @api.get("/api/proposals/{proposal_id}")
    def proposal(proposal_id: int, a: App = Depends(get_app)) -> dict[str, Any]:  # noqa: B008
        p = a.state.proposal(proposal_id)
        return {**p.public(), "audit": a.state.audit_log(proposal_id)}

    @api.post("/api/proposals/{proposal_id}/approve")
    def approve(
        proposal_id: int,
        decision: Decision | None = Body(default=None),  # noqa: B008
        actor: str = Depends(require_token),
        a: App = Depends(get_app),  # noqa: B008
    ) -> dict[str, Any]:
        d = decision or Decision()
        return a.engine.approve(proposal_id, by=d.by or actor, reason=d.reason).public()

    @api.post("/api/proposals/{proposal_id}/reject")
    def reject(
        proposal_id: int,
        decision: Decision | None = Body(default=None),  # noqa: B008
        actor: str = Depends(require_token),
        a: App = Depends(get_app),  # noqa: B008
    ) -> dict[str, Any]:
        d = decision or Decision()
        return a.engine.reject(proposal_id, by=d.by or actor, reason=d.reason).public()

    @api.get("/api/runs")
    def runs(
        limit: int = Query(20, ge=1, le=1000),
        a: App = Depends(get_app),  # noqa: B008
    ) -> list[dict[str, Any]]:
        return [r.public() for r in a.state.runs(limit)]

    @api.get("/api/silences")
    def silences(all: bool = False, a: App = Depends(get_app)) -> list[dict[str, Any]]:  # noqa: B008
        return [s.public() for s in a.state.silences(fmt_ts(utcnow()), include_expired=all)]

    @api.post("/api/silences", status_code=201)
    def add_silence(
        body: SilenceIn,
        actor: str = Depends(require_token),
        a: App = Depends(get_app),  # noqa: B008
    ) -> dict[str, Any]:
        try:
            until = fmt_ts(parse_ts(body.until))
        except ValueError:
            raise HTTPException(422, "until: expected an ISO 8601 time") from None
        with a.store.transaction():
            s = a.state.add_silence(
                rule=body.rule,
                subject=body.subject,
                until=until,
                by=body.by or actor,
                comment=body.comment,
                at=fmt_ts(utcnow()),
            )
        return s.public()

    @api.post("/api/silences/{silence_id}/expire")
    def expire_silence(
        silence_id: int,
        actor: str = Depends(require_token),
        a: App = Depends(get_app),  # noqa: B008
    ) -> dict[str, Any]:
        with a.store.transaction():
            s = a.state.expire_silence(silence_id, by=actor, at=fmt_ts(utcnow()), reason=None)
        return s.public()

    @api.post("/api/test-results")
    async def test_results(
        request: Request,
        run_id: str = Query(..., min_length=1),
        commit: str = Query(..., min_length=1),
        branch: str | None = None,
        actor: str = Depends(require_token),
        a: App = Depends(get_app),  # noqa: B008
    ) -> JSONResponse:
        """Upload one JUnit XML report (the request body) for a test run."""
        from reviewer.ingest import ingest_junit

        data = await request.body()
        if not data.strip():
            raise HTTPException(422, "body: expected a JUnit XML document")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "upload.xml"
            path.write_bytes(data)
            report = ingest_junit(
                a.store,
                [path],
                run_id=run_id,
                commit=commit,
                branch=branch,
                now=fmt_ts(utcnow()),
            )
        body = report.public()
        body["errors"] = [e.replace(str(path), "body") for e in body["errors"]]
        return JSONResponse(body, status_code=422 if report.rejected else 200)

    @api.get("/", response_class=HTMLResponse)
    def page(
        state: str = "pending",
        a: App = Depends(get_app),  # noqa: B008
    ) -> HTMLResponse:
        items = a.state.proposals(state=None if state == "all" else state, limit=200)
        counts = a.state.proposal_state_counts()
        html = _pages.get_template("web/index.html").render(
            proposals=[p.public() for p in items],
            counts=counts,
            state=state,
            last_run=a.state.last_run(),
            open_findings=len(a.state.list_findings("open", None, 5000)),
            token_required=bool(a.config.api_token),
        )
        return HTMLResponse(html)

    api.include_router(pipeline_router)
    return api
