"""``/api/controls``: what the pipeline obeys (list, show, lift)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, StringConstraints

from reviewer.api.common import now_of
from reviewer.api.deps import get_app, require_token
from reviewer.api.guard import RowId
from reviewer.app import App
from store.timeutil import fmt_ts

router = APIRouter()


class Lift(BaseModel):
    """Body of a lift: why (required); the actor is the token's name."""

    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


@router.get("/api/controls")
def controls(
    all: bool = False,
    limit: int = Query(500, ge=1, le=5000),
    a: App = Depends(get_app),  # noqa: B008
) -> list[dict[str, Any]]:
    """Active controls, newest first (``?all=true``: every control, lifted ones too)."""
    at = fmt_ts(now_of(a))
    return [c.public(at) for c in a.state.controls(at, include_lifted=all, limit=limit)]


@router.get("/api/controls/{control_id}")
def control(control_id: RowId, a: App = Depends(get_app)) -> dict[str, Any]:  # noqa: B008
    return a.state.control(control_id).public(fmt_ts(now_of(a)))


@router.post("/api/controls/{control_id}/lift")
def lift(
    control_id: RowId,
    body: Lift,
    actor: str = Depends(require_token),
    a: App = Depends(get_app),  # noqa: B008
) -> dict[str, Any]:
    """Lift a control now (audited with the actor and the reason); lifting twice is harmless."""
    at = fmt_ts(now_of(a))
    with a.store.transaction():
        c, _ = a.state.lift_control(control_id, by=actor, at=at, reason=body.reason)
    return c.public(at)
