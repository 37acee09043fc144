"""``/api/audit``: the audit trail (who, what, when, why), filtered like ``reviewer audit``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from reviewer.api.common import UNPROCESSABLE
from reviewer.api.deps import get_app
from reviewer.app import App
from reviewer.audit import audit_entries

router = APIRouter()


@router.get("/api/audit")
def audit(
    rule: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: str | None = None,
    limit: int = 200,
    a: App = Depends(get_app),  # noqa: B008
) -> list[dict[str, Any]]:
    """The newest audit entries, newest first; 422 naming a bad filter."""
    try:
        return audit_entries(
            a.state, rule=rule, action=action, actor=actor, since=since, limit=limit
        )
    except ValueError as exc:
        raise HTTPException(UNPROCESSABLE, f"query parameter {exc}") from None
