"""``/api/findings``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query

from reviewer.api.deps import get_app
from reviewer.app import App

router = APIRouter()


def _finding(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **json.loads(row["payload"]),
        "state": row["state"],
        "first_seen": row["first_seen"],
        "last_seen": row["last_seen"],
        "times_seen": row["times_seen"],
        "regressions": row["regressions"],
        # The open incident or burst it waits behind (its proposal is inhibited).
        "incident": row.get("incident_id"),
    }


@router.get("/api/findings")
def findings(
    state: str = Query("open", pattern="^(open|resolved|all)$"),
    rule: str | None = None,
    limit: int = Query(500, ge=1, le=5000),
    a: App = Depends(get_app),  # noqa: B008
) -> list[dict[str, Any]]:
    rows = a.state.list_findings(None if state == "all" else state, rule, limit)
    return [_finding(r) for r in rows]
