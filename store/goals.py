"""Goals and their progress, from backlog completion (the seed spec's Phase 3).

A goal is defined in ``config.toml`` or over the API (``POST /api/goals``,
kept in ``reviewer_goals``; a config goal wins over a stored one of the same
id)::

    [goals.ten-specs]
    title = "10 specs done"
    target = 10                  # items to complete; omitted = every linked item
    deadline = 2026-04-30        # optional; a date means the end of that day (UTC)
    label = "v1"                 # optional selector: label, spec and/or task_type
    task_type = "spec"

A backlog item belongs to a goal when its ``goal_id`` is the goal's id, or
when it matches every part of the goal's selector.

Progress (Linear-like): cancelled items are left out; every completed item
counts 1 and every running one ``running_weight`` (default 0.25)::

    progress = min(1, (completed + running_weight × running) / denominator)

where ``denominator`` is ``target`` when set, else the number of linked,
non-cancelled items. A goal with nothing to do (denominator 0) is 0%, status
``empty``. ``remaining = max(0, denominator − completed)``.

Predicted completion: ``rate`` is the completions per day over the last
``rate_window`` (default 14 days); ``predicted = now + remaining / rate`` days,
or none when the rate is 0 (or nothing remains).

Stalled: open work remains and no linked item completed or started for
``stalled_after`` (default 7 days; counted from the first item's creation when
nothing ever moved). ``on_track`` is false for a stalled goal, whatever the
prediction says, and ``on_track_reason`` says why; otherwise it is whether the
predicted completion meets the deadline (null for a goal without deadline).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from store._q_goals import goal_link
from store._view import BacklogView
from store.timeutil import fmt_ts, norm_ts, parse_ts

RUNNING_WEIGHT = 0.25
RATE_WINDOW = timedelta(days=14)
STALLED_AFTER = timedelta(days=7)


def _end_of(day: date) -> str:
    return fmt_ts(datetime.combine(day, time(23, 59, 59), tzinfo=UTC))


class GoalDef(BaseModel):
    """One goal: what it is called, how much it needs, by when, and what it links."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1)
    target: int | None = Field(default=None, ge=1, le=2**63 - 1)
    deadline: str | None = None
    label: str | None = None
    spec: str | None = None
    task_type: str | None = None

    @field_validator("deadline", mode="before")
    @classmethod
    def _deadline(cls, value: Any) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, datetime):
            return norm_ts(value)
        if isinstance(value, date):
            return _end_of(value)
        if isinstance(value, str):
            if len(value) == 10:
                try:
                    return _end_of(date.fromisoformat(value))
                except ValueError:
                    pass
            try:
                return norm_ts(value)
            except ValueError:
                raise ValueError("expected a date or an ISO 8601 time, like 2026-04-30") from None
        raise ValueError("expected a date or an ISO 8601 time, like 2026-04-30")


class GoalIn(GoalDef):
    """A goal sent to ``POST /api/goals``: a definition plus its id."""

    id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


def all_goals(config_goals: dict[str, GoalDef], view: BacklogView) -> dict[str, GoalDef]:
    """Config goals plus the stored ones whose id config does not use, by id."""
    goals: dict[str, GoalDef] = {}
    for row in view.stored_goals():
        data = {k: row[k] for k in ("title", "target", "deadline", "label", "spec", "task_type")}
        goals[row["id"]] = GoalDef.model_validate(data)
    goals.update(config_goals)
    return dict(sorted(goals.items()))


def goal_status(
    view: BacklogView,
    goal_id: str,
    goal: GoalDef,
    *,
    running_weight: float = RUNNING_WEIGHT,
    rate_window: timedelta = RATE_WINDOW,
    stalled_after: timedelta = STALLED_AFTER,
) -> dict[str, Any]:
    """Progress, counts and predicted completion of one goal as of ``view.now``."""
    link = goal_link(goal_id, goal.label, goal.spec, goal.task_type)
    c = view.goal_counts(link, view.ago(rate_window))
    open_items = c["linked"] - c["cancelled"]
    denominator = goal.target if goal.target is not None else open_items
    units = c["completed"] + running_weight * c["running"]
    progress = min(1.0, units / denominator) if denominator else 0.0
    remaining = max(0, denominator - c["completed"])
    days = rate_window.total_seconds() / 86400
    rate = c["completed_recent"] / days if days else 0.0
    predicted = None
    if remaining and rate > 0:
        predicted = fmt_ts(view.now + timedelta(days=remaining / rate))
    if denominator == 0:
        status = "empty"
    elif remaining == 0:
        status = "done"
    else:
        status = "open"
    last_progress = max(
        (t for t in (c["last_completed_at"], c["last_started_at"]) if t), default=None
    )
    open_work = c["pending"] + c["running"] + c["failed"]
    since = last_progress or c["first_created_at"]
    stalled = (
        status == "open"
        and open_work > 0
        and since is not None
        and view.now - parse_ts(since) >= stalled_after
    )
    on_track: bool | None = None
    reason = None
    if stalled:
        on_track = False
        reason = (
            f"no linked item completed or started since {since} "
            f"({days_between(since, view.now):.0f} days; stalled after {_days(stalled_after)})"
        )
    elif goal.deadline is not None and status != "empty":
        if status == "done":
            on_track = True
        else:
            on_track = predicted is not None and predicted <= goal.deadline
            if not on_track:
                reason = (
                    f"predicted completion {predicted} is after the deadline {goal.deadline}"
                    if predicted
                    else f"nothing completed in the last {_days(rate_window)}: no completion "
                    "can be predicted"
                )
    return {
        "id": goal_id,
        "title": goal.title,
        "target": goal.target,
        "deadline": goal.deadline,
        "selector": {
            k: v
            for k, v in (("label", goal.label), ("spec", goal.spec), ("task_type", goal.task_type))
            if v is not None
        },
        "status": status,
        "progress": round(progress, 4),
        "progress_percent": round(progress * 100, 1),
        "linked": c["linked"],
        "completed": c["completed"],
        "running": c["running"],
        "pending": c["pending"],
        "failed": c["failed"],
        "cancelled": c["cancelled"],
        "remaining": remaining,
        "completed_recent": c["completed_recent"],
        "rate_per_day": round(rate, 4),
        "rate_window_days": round(days, 2),
        "predicted_completion": predicted,
        "on_track": on_track,
        "on_track_reason": reason,
        "stalled": stalled,
        "last_progress_at": last_progress,
        "first_created_at": c["first_created_at"],
    }


def goals_report(
    view: BacklogView,
    config_goals: dict[str, GoalDef],
    *,
    running_weight: float = RUNNING_WEIGHT,
    rate_window: timedelta = RATE_WINDOW,
    stalled_after: timedelta = STALLED_AFTER,
) -> list[dict[str, Any]]:
    """The status of every goal (config and stored), by id."""
    return [
        goal_status(
            view,
            gid,
            g,
            running_weight=running_weight,
            rate_window=rate_window,
            stalled_after=stalled_after,
        )
        for gid, g in all_goals(config_goals, view).items()
    ]


def goals_overview(view: BacklogView, settings: dict[str, Any]) -> dict[str, Any]:
    """``{"as_of", "goals"}``: every goal's status with the settings of
    ``Config.goal_settings()``; what ``GET /api/goals`` and ``goals --json`` print."""
    goals = goals_report(
        view,
        settings["goals"],
        running_weight=settings["running_weight"],
        rate_window=settings["rate_window"],
        stalled_after=settings["stalled_after"],
    )
    return {"as_of": view.now_ts, "goals": goals}


def _days(td: timedelta) -> str:
    days = td.total_seconds() / 86400
    return f"{days:g} day" + ("" if days == 1 else "s")


def days_between(earlier: str, later: datetime) -> float:
    """Days from a stored timestamp to ``later``."""
    return (later - parse_ts(earlier)).total_seconds() / 86400
