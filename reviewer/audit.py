"""The audit trail as people read it: who did what, when and why.

``reviewer audit`` and ``GET /api/audit`` both call ``audit_entries``, so the
filters mean the same and the entries have one shape: ``id``, ``at``,
``actor``, ``action``, ``proposal_id``, ``rule``, ``subject``, ``from_state``,
``to_state``, ``reason``, ``details`` (an object or null).
"""

from __future__ import annotations

import json
import re
from typing import Any

from store.state import ReviewerState
from store.timeutil import norm_ts

MAX_LIMIT = 5000
# An action or the prefix of some: proposal, proposal.approved, silence.added, ...
_ACTION = re.compile(r"[a-z][a-z_-]*(\.[a-z][a-z_-]*)*")


def audit_entries(
    state: ReviewerState,
    *,
    rule: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """The newest ``limit`` audit entries matching the filters, newest first.

    Raises ``ValueError("<filter>: why")`` for a value no entry could match."""
    if action is not None and not _ACTION.fullmatch(action):
        raise ValueError(
            f"action: {action!r} is not an action name, like proposal.approved or proposal"
        )
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit: must be between 1 and {MAX_LIMIT} (got {limit})")
    bound = None
    if since is not None:
        try:
            bound = norm_ts(since)
        except ValueError:
            raise ValueError(
                f"since: {since!r} is not an ISO 8601 time, like 2026-03-01T12:00:00Z"
            ) from None
    rows = state.audit_log(
        limit=limit, rule=rule or None, action=action, actor=actor or None, since=bound
    )
    return [public_entry(r) for r in rows]


def public_entry(row: dict[str, Any]) -> dict[str, Any]:
    """One audit row with its ``details`` as an object."""
    out = {k: row.get(k) for k in ("id", "at", "actor", "action", "proposal_id", "rule")}
    out.update({k: row.get(k) for k in ("subject", "from_state", "to_state", "reason")})
    out["details"] = json.loads(row["details"]) if row.get("details") else None
    return out
