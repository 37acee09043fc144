"""``/api/report``: the precision ledger (``reviewer report --json``), and resetting a
rule's tripped breaker (``reviewer rules reset-breaker``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends

from reviewer.api.deps import get_app, require_token
from reviewer.api.proposals import Decision
from reviewer.app import App
from reviewer.ledger import ledger
from store.timeutil import fmt_ts

router = APIRouter()


@router.get("/api/report")
def report(hints: bool = True, a: App = Depends(get_app)) -> dict[str, Any]:  # noqa: B008
    """Per rule: findings, decisions, outcomes of filed tasks, breakers, tuning hints."""
    return ledger(a, hints=hints)


@router.post("/api/rules/{rule_id}/reset-breaker")
def reset_breaker(
    rule_id: str,
    decision: Decision | None = Body(default=None),  # noqa: B008
    actor: str = Depends(require_token),
    a: App = Depends(get_app),  # noqa: B008
) -> dict[str, Any]:
    """Lift a rule's tripped breaker (404 when it is not tripped); audited with who and why."""
    d = decision or Decision()
    with a.store.transaction():
        return a.state.reset_breaker(
            rule_id, by=d.by or actor, at=fmt_ts(a.clock()), reason=d.reason
        )
