"""Did the filed fixes help? Outcomes of scheduled proposals, and the reviewer's breaker.

Judged by the engine in every review cycle, as of its ``now``, in the cycle's
write transaction:

- A scheduled proposal whose backlog task was ``cancelled`` or ``failed`` is
  ``abandoned``.
- Once its task ``completed``, the finding has ``[reviewer] outcome_cycles``
  review cycles to clear. A finding still firing in a cycle after that makes the
  proposal ``not-fixed``; one that has not fired for ``outcome_clear_for`` (since
  its last firing, or since the task ended) makes it ``fixed``.
- A ``fixed`` proposal whose finding fires again later becomes ``regressed``.

Every change is written to the audit log (actor ``reviewer``, action
``proposal.outcome``) with the reason, and the engine's run says which changed.

The breaker: when at least ``breaker_rejections`` of a rule's proposals are
rejected within ``breaker_window`` (a task filed on ``auto`` and then cancelled
counts as a rejection too), a rule configured ``approval = "auto"`` falls back
to ``manual``: its proposals wait for a person. It stays so, audited, until a
person runs ``reviewer rules reset-breaker RULE``; only rejections after the
reset count towards tripping it again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reviewer.config import Config
from store import Approval, Outcome
from store.models import REVIEWER_ACTOR
from store.state import ReviewerState
from store.timeutil import fmt_duration, fmt_ts, parse_ts

ACTOR = REVIEWER_ACTOR


def judge_outcomes(
    state: ReviewerState,
    config: Config,
    at: datetime,
    run_id: int | None,
    failed_rules: set[str],
) -> list[dict[str, Any]]:
    """Record the outcomes that changed as of ``at``; one entry per change."""
    at_ts = fmt_ts(at)
    need = config.reviewer.outcome_cycles
    clear_for = config.reviewer.outcome_clear_for
    changes: list[dict[str, Any]] = []
    for proposal, row in state.outcome_candidates(at_ts, run_id):
        task = proposal.task_id
        if proposal.outcome is None and proposal.task_ended_at is None:
            proposal = state.set_task_ended(proposal, row["t_status"], row["t_ended"], at_ts)
        last_seen = row["f_last_seen"]
        outcome: Outcome | None = None
        reason = ""
        if proposal.outcome == Outcome.fixed:
            outcome = Outcome.regressed
            reason = (
                f"the finding fired again at {last_seen}, after it was judged fixed at "
                f"{proposal.outcome_at}"
            )
        elif row["t_status"] in ("cancelled", "failed"):
            outcome = Outcome.abandoned
            reason = f"task {task} was {row['t_status']} at {row['t_ended']}"
        else:
            rule = config.rules.get(proposal.rule)
            if proposal.rule in failed_rules or rule is None or not rule.settings.enabled:
                continue  # nobody looked for the finding this cycle: no verdict on it
            # The run under way is one of the cycles; a dry run has none recorded.
            cycles = int(row["cycles"]) + (1 if run_id is None else 0)
            if cycles < need:
                continue
            if last_seen == at_ts:
                outcome = Outcome.not_fixed
                reason = (
                    f"the finding fires {cycles} review cycle(s) after task {task} was "
                    f"completed at {row['t_ended']}: a fix clears it within {need} cycle(s) "
                    f"and keeps it clear for {fmt_duration(clear_for)}"
                )
            else:
                since = max(last_seen or row["t_ended"], row["t_ended"])
                if at - parse_ts(since) < clear_for:
                    continue
                outcome = Outcome.fixed
                reason = (
                    f"the finding has not fired since {since} ({fmt_duration(at - parse_ts(since))}"
                    f"), after task {task} was completed at {row['t_ended']}"
                )
        before = proposal.outcome
        done = state.set_outcome(
            proposal,
            outcome,
            at=at_ts,
            reason=reason,
            details={
                "task_id": task,
                "task_status": row["t_status"],
                "finding_last_seen": last_seen,
            },
        )
        changes.append(
            {
                "id": done.id,
                "rule": done.rule,
                "fingerprint": done.fingerprint,
                "task_id": task,
                "from": before.value if before else None,
                "outcome": outcome.value,
                "reason": reason,
            }
        )
    return changes


def check_breakers(
    state: ReviewerState, config: Config, at: datetime, notes: list[str]
) -> frozenset[str]:
    """Trip the breaker of every ``auto`` rule with too many recent rejections; the
    rules whose breaker is tripped (their proposals wait for a person)."""
    limit = config.reviewer.breaker_rejections
    tripped = set(state.tripped_breakers())
    if limit <= 0:
        return frozenset(tripped)
    window = config.reviewer.breaker_window
    at_ts = fmt_ts(at)
    for rule_id, n in sorted(state.rejections_since(fmt_ts(at - window)).items()):
        rule = config.rules.get(rule_id)
        if n < limit or rule_id in tripped or rule is None:
            continue
        if rule.settings.approval != Approval.auto:
            continue  # nothing to fall back from; the report still shows the rejections
        reason = (
            f"{n} rejection(s) within {fmt_duration(window)} (limit {limit}): approval falls "
            f"back from auto to manual until a person runs `reviewer rules reset-breaker "
            f"{rule_id}`"
        )
        state.trip_breaker(rule_id, at=at_ts, rejections=n, reason=reason)
        notes.append(f"rule {rule_id}: breaker tripped, {reason}")
        tripped.add(rule_id)
    return frozenset(tripped)


def effective_approval(config: Config, rule_id: str, tripped: frozenset[str]) -> Approval:
    """A rule's approval as the engine applies it: ``auto`` is ``manual`` while tripped."""
    approval = config.rules[rule_id].settings.approval
    if approval == Approval.auto and rule_id in tripped:
        return Approval.manual
    return approval


__all__ = ["check_breakers", "effective_approval", "judge_outcomes"]
