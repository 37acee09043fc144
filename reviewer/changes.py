"""Approvals that change the backlog instead of filing a task.

A rule module may declare, per kind, a change its approval applies in the
backlog, with the new value carried by the finding's evidence::

    APPLY = {"reorder": "set_priority"}   # evidence["proposed_priority"]

Approving such a proposal changes the subject task (its priority) and marks
the proposal ``scheduled`` with that task as its ``task_id``; the change is
audited (``task.priority-changed``, who approved it and the old and new
value) and remembered in ``reviewer_task_touches`` so the task's activity
stays the pipeline's own. When the change cannot be made (no such task, no
valid value, or a store that cannot change a task: the HTTP store), the
engine files a task as for any other proposal.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rules import REGISTRY
from store import Proposal

if TYPE_CHECKING:
    from reviewer.engine import Engine

PRIORITIES = ("low", "normal", "high", "critical")


def declared(proposal: Proposal) -> str | None:
    """The change a proposal's rule declares for its kind (``set_priority``), if any."""
    return getattr(REGISTRY.get(proposal.rule), "APPLY", {}).get(proposal.kind)


def apply_declared(engine: Engine, proposal: Proposal, at: str, actor: str) -> str | None:
    """Make the declared change of an approved proposal; the changed task's id, or None
    when there is nothing to change here (the caller files a task instead)."""
    action = declared(proposal)
    if action != "set_priority":
        return None
    finding = engine.state.findings_by_print([proposal.fingerprint]).get(proposal.fingerprint)
    evidence = json.loads(finding["payload"]).get("evidence", {}) if finding else {}
    value = evidence.get("proposed_priority")
    if value not in PRIORITIES:
        return None
    previous = engine.store.set_task_priority(proposal.subject, value, at)
    if previous is None:
        return None
    engine.state.audit(
        at,
        actor,
        "task.priority-changed",
        proposal=proposal,
        reason=f"approved {proposal.rule}/{proposal.kind}: priority {previous} -> {value}",
        details={"task_id": proposal.subject, "from": previous, "to": value},
    )
    return proposal.subject


__all__ = ["PRIORITIES", "apply_declared", "declared"]
