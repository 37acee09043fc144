"""stuck-phases, the kinds about work that stopped moving: ``stuck`` and ``stalled-phase``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from reviewer.models import Finding, Severity
from reviewer.timeutil import fmt_duration, parse_ts
from store._view import BacklogView

if TYPE_CHECKING:
    from rules.stuck_phases import Options


@dataclass(frozen=True)
class RunTime:
    """The p95 run time of one (task_type, phase) group and how many runs it rests on."""

    samples: int
    p95: timedelta


# (task_type, phase), '' for a missing one.
Durations = dict[tuple[str, str], RunTime]


def learned_durations(options: Options, view: BacklogView) -> Durations:
    """The p95 run time of every group with enough completed tasks to learn from."""
    out: Durations = {}
    for row in view.phase_duration_p95(options.history):
        if int(row["samples"]) >= options.min_samples:
            key = (row["task_type"], row["phase"])
            # Stored times are whole seconds; rounding drops the float noise of epoch arithmetic.
            p95 = timedelta(seconds=round(float(row["p95_seconds"])))
            out[key] = RunTime(int(row["samples"]), p95)
    return out


def _group(task_type: str | None, phase: str | None) -> str:
    return "/".join(part for part in (task_type, phase) if part) or "untyped"


def _timeout(
    options: Options, task: dict[str, Any], durations: Durations
) -> tuple[timedelta, str, str] | None:
    """The task's timeout, where it came from (configured|learned|fallback), and how it was set."""
    for key in (task["phase"], task["task_type"]):
        if key and key in options.timeouts:
            return (
                options.timeouts[key],
                "configured",
                f"timeouts.{key} = {fmt_duration(options.timeouts[key])}",
            )
    run = durations.get((task["task_type"] or "", task["phase"] or ""))
    group = _group(task["task_type"], task["phase"])
    if run is not None:
        limit = max(options.min_timeout, run.p95 * options.timeout_multiplier)
        how = (
            f"{options.timeout_multiplier:g} × the p95 run time {fmt_duration(run.p95)} of "
            f"{run.samples} completed {group} tasks"
        )
        return limit, "learned", how
    if options.fallback_timeout > timedelta(0):
        how = f"the fallback timeout: too few completed {group} tasks to learn from"
        return options.fallback_timeout, "fallback", how
    return None


def stuck(options: Options, view: BacklogView, durations: Durations) -> Iterator[Finding]:
    """Running tasks past their timeout."""
    limits = [options.min_timeout, *options.timeouts.values()]
    if options.fallback_timeout > timedelta(0):
        limits.append(options.fallback_timeout)
    for task in view.running_tasks(min(limits)):
        found = _timeout(options, task, durations)
        if found is None:
            continue
        limit, source, how = found
        running = view.now - parse_ts(task["started_at"])
        if running < limit:
            continue
        escalate = running >= limit * options.stuck_escalate_after
        group = _group(task["task_type"], task["phase"])
        where = f" on executor {task['executor']}" if task["executor"] else ""
        config_key = task["phase"] or task["task_type"] or "<phase>"
        yield Finding(
            kind="stuck",
            subject=task["id"],
            severity=Severity.error if escalate else None,
            summary=(
                f"{group} task {task['id']} has been running{where} for {fmt_duration(running)} "
                f"since {task['started_at']}, past its timeout of {fmt_duration(limit)} ({how})"
            ),
            evidence={
                "title": task["title"],
                "task_type": task["task_type"],
                "phase": task["phase"],
                "executor": task["executor"],
                "model": task["model"],
                "started_at": task["started_at"],
                "running_minutes": round(running.total_seconds() / 60, 1),
                "timeout_minutes": round(limit.total_seconds() / 60, 1),
                "timeout_source": source,
                "attempts": task["attempts"],
            },
            title=f"Heal stuck task {task['id']}: {task['title']}",
            why=(
                f"A task running {running / limit:.1f}× longer than its timeout has almost always "
                "hung (a dead executor, a lost lock, an agent loop); it holds a slot and blocks "
                "everything that depends on it."
            ),
            action=(
                f"Look at {task['id']}'s executor logs. If it hung, stop it and re-queue it (or "
                "mark it failed with the reason). If it is slow but working, raise "
                f'`timeouts = {{ {config_key} = "..." }}` under [rules.stuck-phases].'
            ),
            remedy="heal",
            task_type="heal",
            related=[task["id"]],
        )


def stalled_phases(options: Options, view: BacklogView, durations: Durations) -> Iterator[Finding]:
    """Phases that take tasks in and give none back."""
    window = fmt_duration(options.stall_window)
    for row in view.phase_flow(options.stall_window):
        inflow, outflow = int(row["inflow"] or 0), int(row["outflow"] or 0)
        if inflow < options.min_inflow or outflow > 0:
            continue
        phase = row["phase"]
        waiting = view.now - parse_ts(row["first_entered_at"])
        typical = max((r.p95 for (_, p), r in durations.items() if p == phase), default=None)
        # A phase whose tasks normally outlast the wait so far is slow, not stalled.
        if typical is not None and waiting < typical:
            continue
        usual = f"; its tasks usually finish within {fmt_duration(typical)}" if typical else ""
        yield Finding(
            kind="stalled-phase",
            subject=f"phase:{phase}",
            summary=(
                f"Phase {phase} took in {inflow} tasks in the last {window} and finished none; "
                f"the first entered {fmt_duration(waiting)} ago{usual}"
            ),
            evidence={
                "phase": phase,
                "inflow": inflow,
                "outflow": outflow,
                "running": int(row["running"] or 0),
                "first_entered_at": row["first_entered_at"],
                "window_hours": round(options.stall_window.total_seconds() / 3600, 1),
                "typical_p95_minutes": round(typical.total_seconds() / 60, 1) if typical else None,
            },
            title=f"Heal stalled phase {phase}: {inflow} tasks in, none out in {window}",
            why=(
                "When a phase keeps starting work and finishes nothing, whatever drives it has "
                "stopped (a crashed worker, an exhausted quota, a broken hand-off); the backlog "
                "behind it grows and every task in it waits."
            ),
            action=(
                f"Check the workers and the hand-off of phase {phase}: are its executors alive, "
                "do its tasks make progress, does its output reach the next phase? Restart or "
                "fix what is broken, then re-queue the tasks that hung."
            ),
            remedy="heal",
            task_type="heal",
        )
