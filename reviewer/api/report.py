"""``/api/report``: the precision ledger (``reviewer report --json``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from reviewer.api.deps import get_app
from reviewer.app import App
from reviewer.ledger import ledger

router = APIRouter()


@router.get("/api/report")
def report(hints: bool = True, a: App = Depends(get_app)) -> dict[str, Any]:  # noqa: B008
    """Per rule: findings, decisions, outcomes of filed tasks, breakers, tuning hints."""
    return ledger(a, hints=hints)
