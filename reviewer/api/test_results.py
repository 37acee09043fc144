"""``POST /api/test-results``: a JUnit XML upload."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from reviewer.api.auth import Principal
from reviewer.api.deps import get_app, require_scope
from reviewer.app import App
from store.timeutil import fmt_ts, utcnow

router = APIRouter()


@router.post("/api/test-results")
async def test_results(
    request: Request,
    run_id: str = Query(..., min_length=1),
    commit: str = Query(..., min_length=1),
    branch: str | None = None,
    _: Principal = Depends(require_scope("ingest")),  # noqa: B008
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
    if "warnings" in body:
        body["warnings"] = [w.replace(str(path), "body") for w in body["warnings"]]
    return JSONResponse(body, status_code=422 if report.rejected else 200)
