"""``POST /api/coverage``: upload one Cobertura XML report (the request body) for a commit."""

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


@router.post("/api/coverage")
async def post_coverage(
    request: Request,
    commit: str = Query(..., min_length=1),
    branch: str | None = None,
    _: Principal = Depends(require_scope("ingest")),  # noqa: B008
    a: App = Depends(get_app),  # noqa: B008
) -> JSONResponse:
    """Store the report's per-file coverage; 422 with the messages when any part was refused."""
    from reviewer.ingest_coverage import ingest_coverage

    data = await request.body()
    if not data.strip():
        raise HTTPException(422, "body: expected a Cobertura XML document")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload.xml"
        path.write_bytes(data)
        report = ingest_coverage(a.store, path, commit=commit, branch=branch, now=fmt_ts(utcnow()))
    body = report.public()
    body["errors"] = [e.replace(str(path), "body") for e in body["errors"]]
    return JSONResponse(body, status_code=422 if report.rejected else 200)
