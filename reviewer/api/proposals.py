"""``/api/proposals``: list, show, approve, reject."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict

from reviewer.api.auth import Principal
from reviewer.api.deps import actor_for, get_app, require_scope
from reviewer.api.guard import RowId
from reviewer.app import App
from store.models import ProposalState

# The states a proposal can be in, for the list filter (an unknown one is a 422).
STATE_PATTERN = "^(" + "|".join([*(s.value for s in ProposalState), "all"]) + ")$"

router = APIRouter()


class Decision(BaseModel):
    """Body of approve/reject: why (optional); ``by`` only from an admin token."""

    model_config = ConfigDict(extra="forbid")
    by: str | None = None
    reason: str | None = None


@router.get("/api/proposals")
def proposals(
    state: str | None = Query(None, pattern=STATE_PATTERN),
    rule: str | None = None,
    limit: int = Query(500, ge=1, le=5000),
    a: App = Depends(get_app),  # noqa: B008
) -> list[dict[str, Any]]:
    items = a.state.proposals(state=None if state == "all" else state, rule=rule, limit=limit)
    return [p.public() for p in items]


@router.get("/api/proposals/{proposal_id}")
def proposal(proposal_id: RowId, a: App = Depends(get_app)) -> dict[str, Any]:  # noqa: B008
    p = a.state.proposal(proposal_id)
    return {**p.public(), "audit": a.state.audit_log(proposal_id)}


@router.post("/api/proposals/{proposal_id}/approve")
def approve(
    proposal_id: RowId,
    request: Request,
    decision: Decision | None = Body(default=None),  # noqa: B008
    principal: Principal = Depends(require_scope("approve")),  # noqa: B008
    a: App = Depends(get_app),  # noqa: B008
) -> dict[str, Any]:
    d = decision or Decision()
    actor = actor_for(request, principal, d.by)
    return a.engine.approve(proposal_id, by=actor, reason=d.reason).public()


@router.post("/api/proposals/{proposal_id}/reject")
def reject(
    proposal_id: RowId,
    request: Request,
    decision: Decision | None = Body(default=None),  # noqa: B008
    principal: Principal = Depends(require_scope("approve")),  # noqa: B008
    a: App = Depends(get_app),  # noqa: B008
) -> dict[str, Any]:
    d = decision or Decision()
    actor = actor_for(request, principal, d.by)
    return a.engine.reject(proposal_id, by=actor, reason=d.reason).public()
