"""Applying and lifting controls: the engine's side of what the pipeline obeys.

A finding may carry a control (``Finding.control``: pause an executor, hold a
task type, throttle a scope, quarantine a test). When the finding's proposal is
scheduled (approved by a person, or at once under ``approval = "auto"``) the
control is applied beside the filed task, with an expiry of the rule's
``control_ttl`` (default ``[reviewer] control_ttl``). Each review cycle lifts
the controls that expired, and those whose finding has not fired for
``[reviewer] control_lift_after_cycles`` cycles in a row. Every apply and lift
is audited (``control.applied``, ``control.lifted``) with who and why; the
notifications read those entries.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from reviewer.config import Config
from store import Control, ControlSpec, Proposal
from store.models import REVIEWER_ACTOR
from store.state import ReviewerState
from store.timeutil import fmt_duration, fmt_ts, parse_ts

ACTOR = REVIEWER_ACTOR


def control_ttl(config: Config, rule_id: str) -> timedelta:
    """How long a control of this rule lasts; 0 when the rule applies none."""
    rule = config.rules.get(rule_id)
    own = rule.settings.control_ttl if rule is not None else None
    return own if own is not None else config.reviewer.control_ttl


def apply_for_proposal(
    state: ReviewerState,
    config: Config,
    proposal: Proposal,
    payload: dict[str, Any],
    *,
    at: str,
    actor: str,
    why: str,
) -> Control | None:
    """Apply the control the proposal's finding asks for, if any; None when there is none
    (or the rule's ``control_ttl`` is 0, or the same control is already in force)."""
    raw = payload.get("control")
    if not raw:
        return None
    ttl = control_ttl(config, proposal.rule)
    if ttl <= timedelta(0):
        return None
    control, created = state.apply_control(
        ControlSpec.model_validate(raw),
        reason=payload.get("summary") or proposal.title,
        by=actor,
        at=at,
        expires_at=fmt_ts(parse_ts(at) + ttl),
        fingerprint=proposal.fingerprint,
        rule=proposal.rule,
        proposal_id=proposal.id,
        why=f"applied with proposal {proposal.id} ({why})",
    )
    return control if created else None


def lift_due(
    state: ReviewerState, config: Config, firing: set[str], failed_rules: set[str], at: str
) -> list[Control]:
    """Lift what has expired or whose finding stayed clear long enough; the lifted ones.

    A control whose rule failed this cycle keeps its count: a rule that could not
    look has not seen its finding clear.
    """
    needed = config.reviewer.control_lift_after_cycles
    lifted: list[Control] = []
    for control in state.unlifted_controls():
        if control.expires_at <= at:
            ttl = parse_ts(control.expires_at) - parse_ts(control.created_at)
            reason = f"expired at {control.expires_at} (it lasted {fmt_duration(ttl)})"
        elif control.fingerprint is None or control.rule in failed_rules:
            continue
        elif control.fingerprint in firing:
            if control.clear_cycles:
                state.set_control_clear_cycles(control.id, 0)
            continue
        elif control.clear_cycles + 1 < needed:
            state.set_control_clear_cycles(control.id, control.clear_cycles + 1)
            continue
        else:
            state.set_control_clear_cycles(control.id, control.clear_cycles + 1)
            reason = f"its finding has not fired for {control.clear_cycles + 1} cycles in a row"
        done, _ = state.lift_control(control.id, by=ACTOR, at=at, reason=reason)
        lifted.append(done)
    return lifted


__all__ = ["apply_for_proposal", "control_ttl", "lift_due"]
