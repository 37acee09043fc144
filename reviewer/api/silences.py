"""``/api/silences``: list, add, expire."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict

from reviewer.api.auth import Principal
from reviewer.api.deps import actor_for, get_app, require_scope
from reviewer.api.guard import RowId
from reviewer.app import App
from store.timeutil import fmt_ts, parse_ts, utcnow

router = APIRouter()


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: str
    subject: str
    until: str
    by: str | None = None
    comment: str


@router.get("/api/silences")
def silences(all: bool = False, a: App = Depends(get_app)) -> list[dict[str, Any]]:  # noqa: B008
    return [s.public() for s in a.state.silences(fmt_ts(utcnow()), include_expired=all)]


@router.post("/api/silences", status_code=201)
def add_silence(
    request: Request,
    body: SilenceIn,
    principal: Principal = Depends(require_scope("approve")),  # noqa: B008
    a: App = Depends(get_app),  # noqa: B008
) -> dict[str, Any]:
    actor = actor_for(request, principal, body.by)
    from reviewer.app import check_silence

    try:
        until_at = parse_ts(body.until)
        until = fmt_ts(until_at)
    except ValueError:
        raise HTTPException(422, "until: expected an ISO 8601 time") from None
    try:
        check_silence(body.rule, body.subject, until_at, utcnow())
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    with a.store.transaction():
        s = a.state.add_silence(
            rule=body.rule,
            subject=body.subject,
            until=until,
            by=actor,
            comment=body.comment,
            at=fmt_ts(utcnow()),
        )
    return s.public()


@router.post("/api/silences/{silence_id}/expire")
def expire_silence(
    request: Request,
    silence_id: RowId,
    principal: Principal = Depends(require_scope("approve")),  # noqa: B008
    a: App = Depends(get_app),  # noqa: B008
) -> dict[str, Any]:
    actor = actor_for(request, principal)
    with a.store.transaction():
        s = a.state.expire_silence(silence_id, by=actor, at=fmt_ts(utcnow()), reason=None)
    return s.public()
