"""``/api/proposals``: list, show, approve, reject."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, ConfigDict

from reviewer.api.deps import get_app, require_token
from reviewer.api.guard import RowId
from reviewer.app import App

router = APIRouter()


class Decision(BaseModel):
    """Body of approve/reject: who decides and why (both optional)."""

    model_config = ConfigDict(extra="forbid")
    by: str | None = None
    reason: str | None = None


@router.get("/api/proposals")
def proposals(
    state: str | None = None,
    rule: str | None = None,
    limit: int = Query(500, ge=1, le=5000),
    a: App = Depends(get_app),  # noqa: B008
) -> list[dict[str, Any]]:
    return [p.public() for p in a.state.proposals(state=state, rule=rule, limit=limit)]


@router.get("/api/proposals/{proposal_id}")
def proposal(proposal_id: RowId, a: App = Depends(get_app)) -> dict[str, Any]:  # noqa: B008
    p = a.state.proposal(proposal_id)
    return {**p.public(), "audit": a.state.audit_log(proposal_id)}


@router.post("/api/proposals/{proposal_id}/approve")
def approve(
    proposal_id: RowId,
    decision: Decision | None = Body(default=None),  # noqa: B008
    actor: str = Depends(require_token),
    a: App = Depends(get_app),  # noqa: B008
) -> dict[str, Any]:
    d = decision or Decision()
    return a.engine.approve(proposal_id, by=d.by or actor, reason=d.reason).public()


@router.post("/api/proposals/{proposal_id}/reject")
def reject(
    proposal_id: RowId,
    decision: Decision | None = Body(default=None),  # noqa: B008
    actor: str = Depends(require_token),
    a: App = Depends(get_app),  # noqa: B008
) -> dict[str, Any]:
    d = decision or Decision()
    return a.engine.reject(proposal_id, by=d.by or actor, reason=d.reason).public()
