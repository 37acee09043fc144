"""``/api/incidents``: findings grouped behind one cause, and bursts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from reviewer.api.deps import get_app
from reviewer.app import App
from reviewer.incidents import listing

router = APIRouter()


@router.get("/api/incidents")
def incidents(
    state: str = Query("open", pattern="^(open|resolved|all)$"),
    limit: int = Query(200, ge=1, le=5000),
    a: App = Depends(get_app),  # noqa: B008
) -> list[dict[str, Any]]:
    return listing(a.state, None if state == "all" else state, limit)
