"""goal-progress: goals that have stopped moving or will miss their deadline.

A goal (``[goals.<id>]`` in config.toml, or ``POST /api/goals``) tracks the
backlog items linked to it (see ``store.goals`` for the link and the
progress formula). When a goal stops moving, the reason is usually a few
items: one that failed, one stuck in ``running``, one waiting on a dependency
that never finishes. This rule names them in an unblocking task, the seed
spec's "when goal stalled, create tasks to unblock".

Kinds
-----
``stalled``
    No linked item completed or started for ``stalled_after`` while open work
    (pending, running or failed items) remains. A goal with no progress ever
    counts from its first linked item's creation.
``at-risk``
    The goal has a deadline and will miss it: the predicted completion (from
    the completions per day over ``rate_window``) is after the deadline, or
    nothing completed within ``rate_window`` so no completion can be
    predicted, or the deadline has passed with work remaining. Escalated to
    ``error`` once the deadline has passed.

Subject ``goal:<id>``. Options (defaults shown)::

    [rules.goal-progress]
    stalled_after = "7d"      # no completion or start for this long → stalled
    stuck_after = "2d"        # a running item idle this long is named as stuck
    rate_window = "14d"       # completions per day are measured over this window
    running_weight = 0.25     # a running item's share of a completed one
    max_blockers = 10         # blocking items named in one finding
    # goals = { ... }         # filled from config.toml's [goals] tables

Fires: goal ``g`` with items t1 (completed 2026-03-01) and t2 (failed
2026-03-02), reviewed on 2026-03-20: stalled for 19 days, t2 named as failed.

Silent: the same goal with an item completed on 2026-03-18; or a goal whose
items are all completed or cancelled; or a goal with no linked items.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from pydantic import Field

from rules.contract import Finding, RuleOptions, Severity
from store import BacklogView, goal_link, json_list
from store.goals import GoalDef, all_goals, days_between, goal_status
from store.timeutil import Duration, fmt_duration, parse_ts

ID = "goal-progress"
DEFAULTS: dict[str, object] = {"severity": "warning", "approval": "manual"}
# The option `reviewer report` suggests changing when this rule is noisy, and which way is quieter.
TUNING = {"option": "stalled_after", "quieter": "higher"}
# Kinds an operational cause can produce (grouped into incidents by the engine).
SYMPTOM_KINDS = ("stalled", "at-risk")


# Options filled by the config loader from top-level tables: ``goals`` from [goals.<id>].
CONFIG_TABLES = {"goals": "goals"}


class Options(RuleOptions):
    # Filled by the config loader from the [goals.<id>] tables, not set in [rules.goal-progress].
    goals: dict[str, GoalDef] = Field(
        default_factory=dict, exclude=True, json_schema_extra={"injected": True}
    )
    stalled_after: Duration = timedelta(days=7)
    stuck_after: Duration = timedelta(days=2)
    rate_window: Duration = timedelta(days=14)
    running_weight: float = Field(default=0.25, ge=0, le=1)
    max_blockers: int = Field(default=10, ge=1)


def blockers(
    options: Options, view: BacklogView, goal_id: str, goal: GoalDef
) -> list[dict[str, Any]]:
    """The linked items holding the goal up, each with why (failed, stuck, waiting)."""
    link = goal_link(goal_id, goal.label, goal.spec, goal.task_type)
    rows = view.goal_blockers(link, view.ago(options.stuck_after), options.max_blockers * 4)
    out: list[dict[str, Any]] = []
    for row in rows:
        item: dict[str, Any] = {"id": row["id"], "title": row["title"], "state": row["state"]}
        if row["state"] == "failed":
            item["why"] = "failed" + (f": {row['error'][:120]}" if row["error"] else "")
        elif row["state"] == "running":
            idle = view.now - parse_ts(row["last_activity"])
            item["why"] = f"running with no activity for {fmt_duration(idle)}"
        else:
            deps = [str(d) for d in json_list(row["depends_on"])]
            states = view.task_states(deps)
            waiting = [d for d in deps if states.get(d) != "completed"]
            if not waiting:
                continue
            item["waiting_on"] = {d: states.get(d, "missing") for d in waiting}
            item["why"] = "waiting on " + ", ".join(
                f"{d} ({states.get(d, 'missing')})" for d in waiting
            )
        out.append(item)
        if len(out) >= options.max_blockers:
            break
    return out


def _action(goal_id: str, items: list[dict[str, Any]]) -> str:
    if not items:
        return (
            f"No linked item of goal {goal_id} failed, is stuck or waits on another: its "
            "pending work is simply not being picked up. Raise its priority or assign it."
        )
    lines = [f"- {i['id']} ({i['title']}): {i['why']}" for i in items]
    return (
        f"Unblock goal {goal_id}. These items hold it up:\n"
        + "\n".join(lines)
        + "\nInvestigate the failures, restart or split the stuck items, and finish or drop "
        "the dependencies they wait on."
    )


def check(options: Options, view: BacklogView) -> Iterator[Finding]:
    for goal_id, goal in all_goals(options.goals, view).items():
        st = goal_status(
            view,
            goal_id,
            goal,
            running_weight=options.running_weight,
            rate_window=options.rate_window,
            stalled_after=options.stalled_after,
        )
        if st["status"] != "open":
            continue
        open_work = st["pending"] + st["running"] + st["failed"]
        since = st["last_progress_at"] or st["first_created_at"]
        stalled_days = days_between(since, view.now) if since else 0.0
        is_stalled = st["stalled"]
        deadline = goal.deadline
        late = deadline is not None and deadline < view.now_ts
        at_risk = deadline is not None and (
            late or st["predicted_completion"] is None or st["predicted_completion"] > deadline
        )
        if not (is_stalled or at_risk):
            continue
        items = blockers(options, view, goal_id, goal)
        evidence = {
            **{k: st[k] for k in ("progress_percent", "completed", "remaining", "running")},
            **{k: st[k] for k in ("pending", "failed", "rate_per_day", "predicted_completion")},
            "deadline": deadline,
            "last_progress_at": st["last_progress_at"],
            "blockers": items,
        }
        common: dict[str, Any] = {
            "subject": f"goal:{goal_id}",
            "title": f"Unblock goal {goal_id}: {goal.title}",
            "action": _action(goal_id, items),
            "remedy": "escalate",
            "related": [i["id"] for i in items],
        }
        if is_stalled:
            yield Finding(
                kind="stalled",
                summary=(
                    f"goal {goal_id} ({goal.title}) has made no progress for "
                    f"{stalled_days:.0f} days at {st['progress_percent']}% with "
                    f"{open_work} open item(s); {len(items)} blocking"
                ),
                evidence={**evidence, "stalled_days": round(stalled_days, 1)},
                why="A goal nobody moves is quietly abandoned; its blockers need a decision.",
                **common,
            )
        if at_risk:
            predicted = st["predicted_completion"] or "never at the current rate"
            yield Finding(
                kind="at-risk",
                severity=Severity.error if late else None,
                summary=(
                    f"goal {goal_id} ({goal.title}) "
                    + ("missed" if late else "will miss")
                    + f" its deadline {deadline}: {st['remaining']} item(s) left, "
                    f"predicted completion {predicted}"
                ),
                evidence=evidence,
                why="At the current completion rate the goal will not be met by its deadline.",
                **common,
            )
