"""``/api/runs``: review cycles."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from reviewer.api.deps import get_app
from reviewer.app import App

router = APIRouter()


@router.get("/api/runs")
def runs(
    limit: int = Query(20, ge=1, le=1000),
    a: App = Depends(get_app),  # noqa: B008
) -> list[dict[str, Any]]:
    return [r.public() for r in a.state.runs(limit)]
