"""The findings of usage-spikes, worded for the person who has to act on them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from scipy.stats import norm

from rules.contract import ControlKind, ControlSpec, Finding, Severity
from rules.usage_spikes.spike import Spike
from rules.usage_spikes.stats import Reference, hour_label

_THROTTLE = "throttle"


def amount(measure: str, value: float | None) -> str:
    """A usage figure as people read it: ``$4.20`` or ``412,000 tokens``."""
    if value is None:
        return "not reported"
    if measure == "cost":
        return f"${value:,.2f}"
    return f"{value:,.0f} tokens"


def _round(value: float | None, digits: int = 2) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


# Chances below this are all "less than one in a billion": the tails of the
# models behind them are not accurate that far out.
_MIN_CHANCE = 1e-9


def chance(z: float) -> float:
    """The upper-tail probability of a normal-equivalent z, floored at one in a billion."""
    p = 1.0 if z == float("-inf") else float(norm.sf(z)) if math.isfinite(z) else 0.0
    return float(f"{max(p, _MIN_CHANCE):.2g}")


def odds(p: float) -> str:
    """A probability as people read it: ``about 1 in 3,000``."""
    if p <= _MIN_CHANCE:
        return "less than 1 in a billion"
    return f"about 1 in {_sig(1.0 / p)}"


def _sig(x: float) -> str:
    digits = max(0, len(str(int(x))) - 2)
    return f"{round(x, -digits):,.0f}"


def task_outlier(
    task: dict[str, Any],
    task_type: str,
    model: str,
    refs: Mapping[str, Reference],
    over: list[str],
    action: str,
) -> Finding:
    """A task that used far more than its peers."""
    values = {"tokens": task["tokens"], "cost": task["cost_usd"]}
    measure = max(over, key=lambda m: refs[m].score(values[m]))
    ref, value = refs[measure], values[measure]
    ratio = ref.ratio(value)
    task_id = task["task_id"]
    if ref.median > 0:
        against = (
            f"{ratio:.1f}× the median of {amount(measure, ref.median)} over {ref.samples} peers "
            f"(robust score {ref.score(value):.1f})"
        )
        times = f"{ratio:.1f}× the usual"
    else:
        against = f"while most of its {ref.samples} peers used none"
        times = "far more than the usual"
    group = f"{task_type or 'untyped'} tasks on {model or 'an unnamed model'}"
    what = "tokens" if measure == "tokens" else "cost"
    if action == _THROTTLE:
        title = f"Cap per-task {what} of {group}: task {task_id} used {times}"
        act = (
            f"Set a per-task {what} limit for {group} near {amount(measure, ref.median * 3)} "
            f"(3× the median) so a runaway run is stopped early, then read the run log of "
            f"{task_id} to find why it ran away."
        )
    else:
        title = f"Investigate why task {task_id} used {times} {what}"
        act = (
            f"Read the run log of {task_id}: look for repeated tool calls, a context that kept "
            f"growing, or retries inside the run. Fix the prompt or task description behind it, "
            f"comparing with a typical run of {group}."
        )
    return Finding(
        kind="task-outlier",
        subject=f"task:{task_id}",
        summary=f"Task {task_id} ({group}) used {amount(measure, value)}, {against}",
        evidence={
            "task_id": task_id,
            "task_type": task_type or None,
            "model": model or None,
            "executor": task["executor"],
            "created_at": task["created_at"],
            "measure": measure,
            "over": sorted(over),
            "tokens": values["tokens"],
            "tokens_in": task["tokens_in"],
            "tokens_out": task["tokens_out"],
            "cost_usd": values["cost"],
            "median": _round(ref.median, 4),
            "robust_sd": _round(ref.scale, 4),
            "score": _round(ref.score(value)),
            "ratio": _round(ratio),
            "peers": ref.samples,
        },
        title=title,
        why=(
            "A task that uses many times what its peers use usually means a loop, an oversized "
            "context or a retry storm inside the run; left alone the cause repeats on the next "
            "task of its kind and the bill grows with it."
        ),
        action=act,
        remedy=action,
        related=[task_id],
    )


def _names(scopes: list[str]) -> str:
    if len(scopes) <= 1:
        return "".join(scopes)
    return ", ".join(scopes[:-1]) + " and " + scopes[-1]


def spike(s: Spike, action: str) -> Finding:
    """A scope whose hourly usage has stood far above normal for hours."""
    peak, last = s.peak, s.hours[-1]
    assert peak.baseline is not None and peak.value is not None
    since = hour_label(s.opened_at)
    ratio, score = peak.baseline.ratio(peak.value), peak.baseline.score(peak.value)
    anomalous = sum(h.anomalous for h in s.episode)
    what = "token use" if s.measure == "tokens" else "cost"
    state = (
        f"still {amount(s.measure, last.value)} in the hour from {hour_label(last.hour)}"
        if last.anomalous
        else f"back to {amount(s.measure, last.value)} in the last hour; open until it stays "
        "normal for a few hours"
    )
    usual = amount(s.measure, peak.baseline.median)
    if peak.baseline.median > 0:
        against = f"against a usual {usual} ({ratio:.1f}×, robust score {score:.1f})"
        level = f"{ratio:.1f}× normal"
    else:
        against = "with no usage at this hour before"
        level = "up from none"
    total, normal = s.totals()
    hours = len(s.episode)
    sustained = any(h.sustained for h in s.episode)
    if sustained and hours > 1:
        rise = f"{total / normal:.1f}× " if normal > 0 else ""
        against += (
            f"; the {hours} hours since hold {amount(s.measure, total)}, {rise}their usual "
            f"{amount(s.measure, normal)}, a sustained rise"
        )
    p_chance = chance(s.z)
    odd = odds(p_chance)
    own = (
        f" (its tasks outside {_names(s.excluding)}, reported on their own)" if s.excluding else ""
    )
    also = f"; this also explains the rise of {_names(s.explains)}" if s.explains else ""
    control = None
    if action == _THROTTLE:
        # Its usual number of tasks in the peak hour: the rate the scope is held to.
        per_hour = max(1, math.ceil(peak.baseline.expected_tasks))
        control = ControlSpec(kind=ControlKind.throttle, target=s.subject, tasks_per_hour=per_hour)
        title = f"Throttle {s.subject}: hourly {what} {level} since {since}"
        act = (
            f"Pause {s.subject} or rate-limit it to its usual level (about {usual} an hour, "
            f"{per_hour} task(s) an hour; approving applies that throttle) until the cause is "
            "found, then lift the limit once hourly usage is normal again."
        )
    else:
        title = f"Investigate the {what} spike of {s.subject} since {since}"
        act = (
            f"Look at the tasks of {s.subject} since {since}: which task types, models or "
            "executors grew, and whether single tasks ran away (see task-outlier findings). "
            "Stop the cause; if the new level is intended, silence this finding for a few days "
            "while the baseline catches up."
        )
        if s.explains:
            act += (
                f" The rise of {_names(s.explains)} comes from these same tasks: "
                "fixing this fixes them, so they have no finding of their own."
            )
    return Finding(
        kind="spike",
        subject=s.subject,
        summary=(
            f"Hourly {what} of {s.subject}{own} far above normal since {since}: peak "
            f"{amount(s.measure, peak.value)} in the hour from {hour_label(peak.hour)} "
            f"{against}; by chance {odd}; {state}{also}"
        ),
        evidence={
            "scope": s.subject,
            "measure": s.measure,
            "opened_at": since,
            "hours_anomalous": anomalous,
            "peak_hour": hour_label(peak.hour),
            "peak_value": _round(peak.value, 4),
            "baseline": _round(peak.baseline.median, 4),
            "robust_sd": _round(peak.baseline.scale, 4),
            "ratio": _round(ratio),
            "score": _round(score),
            "chance": p_chance,
            "sustained": sustained,
            "episode_hours": hours,
            "episode_value": _round(total, 4),
            "episode_baseline": _round(normal, 4),
            "baseline_days": peak.baseline.samples,
            "excluding": s.excluding,
            "explains": s.explains,
            "series": [
                {
                    "hour": hour_label(h.hour),
                    "value": _round(h.value, 4),
                    "baseline": _round(h.baseline.median, 4) if h.baseline else None,
                    "anomalous": h.anomalous,
                }
                for h in s.hours
            ],
        },
        title=title,
        why=(
            "Usage that jumps several times above its usual level for that hour, hour after "
            "hour, is spending on something new: a retry loop, runaway tasks, a misrouted queue "
            "or a changed prompt. Regular daily and weekly peaks are part of the baseline, so "
            "this is not the normal rhythm."
        ),
        action=act,
        remedy=action,
        control=control,
    )


def budget(
    scope: str,
    spent: float,
    tasks: int,
    limit: float,
    day_start: str,
    now_ts: str,
    escalate_at: float,
    action: str,
) -> Finding:
    """Today's spend above a configured daily budget."""
    who = "all tasks" if scope == "all" else scope
    share = spent / limit
    control = None
    if action == _THROTTLE:
        control = ControlSpec(kind=ControlKind.throttle, target=scope, usd_per_day=limit)
        title = f"Pause {who} for the rest of the day: ${spent:,.2f} of a ${limit:,.2f} budget"
        act = (
            f"Pause new work for {who} until 00:00 UTC (approving applies a throttle of "
            f"${limit:,.2f} a day, which starts nothing more today), or throttle it to essential "
            "tasks; then find what drove today's spend and raise the budget only if the growth "
            "is intended."
        )
    else:
        title = f"Daily budget exceeded for {who}: ${spent:,.2f} of ${limit:,.2f}"
        act = (
            f"Find what drove today's spend for {who} (task counts and cost per task against "
            "yesterday, and any spike or task-outlier findings), then stop the cause, or raise "
            "the budget in [rules.usage-spikes] if the growth is intended."
        )
    return Finding(
        kind="budget",
        subject=scope,
        severity=Severity.error if share >= escalate_at else None,
        summary=(
            f"Spend of {who} since 00:00 UTC is ${spent:,.2f} over {tasks} tasks, "
            f"{share:.0%} of its daily budget of ${limit:,.2f}"
        ),
        evidence={
            "scope": scope,
            "spent_usd": round(spent, 4),
            "budget_usd": limit,
            "share": round(share, 3),
            "tasks": tasks,
            "since": day_start,
            "as_of": now_ts,
        },
        title=title,
        why=(
            "The daily budget is the spend someone agreed to; going over it means usage grew "
            "without a decision or something is burning money, and every further hour today "
            "adds to it."
        ),
        action=act,
        remedy=action,
        control=control,
    )
