"""stuck-phases, the kinds about work that stopped moving: ``stuck`` and ``stalled-phase``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from rules.contract import Finding, Severity
from rules.stuck_phases import throughput as _stuck_throughput
from store import BacklogView, json_list
from store.timeutil import fmt_duration, parse_ts


class Settings(Protocol):
    """The stuck-phases options the running-work checks read (the rule's ``Settings`` has them)."""

    @property
    def timeouts(self) -> Mapping[str, timedelta]: ...

    @property
    def timeout_multiplier(self) -> float: ...

    @property
    def min_samples(self) -> int: ...

    @property
    def min_timeout(self) -> timedelta: ...

    @property
    def fallback_timeout(self) -> timedelta: ...

    @property
    def history(self) -> timedelta: ...

    @property
    def stuck_escalate_after(self) -> float: ...

    @property
    def stall_window(self) -> timedelta: ...

    @property
    def min_open(self) -> int: ...

    @property
    def stall_chance(self) -> float: ...


@dataclass(frozen=True)
class RunTime:
    """The p95 run time of one (task_type, phase) group and how many runs it rests on."""

    samples: int
    p95: timedelta


# (task_type, phase), '' for a missing one.
Durations = dict[tuple[str, str], RunTime]


def learned_durations(options: Settings, view: BacklogView) -> Durations:
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
    options: Settings, task: dict[str, Any], durations: Durations
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


@dataclass(frozen=True)
class StuckTask:
    """A running task past its timeout, and how that timeout was set."""

    task: dict[str, Any]
    limit: timedelta
    source: str
    how: str
    running: timedelta
    escalate: bool


def stuck_tasks(options: Settings, view: BacklogView, durations: Durations) -> list[StuckTask]:
    """Running tasks past their timeout, oldest first."""
    limits = [options.min_timeout, *options.timeouts.values()]
    if options.fallback_timeout > timedelta(0):
        limits.append(options.fallback_timeout)
    out = []
    for task in view.running_tasks(min(limits)):
        found = _timeout(options, task, durations)
        if found is None:
            continue
        limit, source, how = found
        running = view.now - parse_ts(task["started_at"])
        if running >= limit:
            escalate = running >= limit * options.stuck_escalate_after
            out.append(StuckTask(task, limit, source, how, running, escalate))
    return out


def stuck(found: list[StuckTask]) -> Iterator[Finding]:
    """A finding per stuck task, each with its own heal proposal (a stall never swallows it)."""
    for item in found:
        task, limit, running = item.task, item.limit, item.running
        group = _group(task["task_type"], task["phase"])
        where = f" on executor {task['executor']}" if task["executor"] else ""
        config_key = task["phase"] or task["task_type"] or "<phase>"
        yield Finding(
            kind="stuck",
            subject=task["id"],
            severity=Severity.error if item.escalate else None,
            summary=(
                f"{group} task {task['id']} has been running{where} for {fmt_duration(running)} "
                f"since {task['started_at']}, past its timeout of {fmt_duration(limit)} "
                f"({item.how}; {running / limit:.1f}× the timeout)"
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
                "timeout_source": item.source,
                "times_timeout": round(running / limit, 2),
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


# Pending tasks with dependencies examined per phase, and stuck tasks listed per finding.
_MAX_DEPENDENT = 500
_MAX_LISTED = 20
# The longest wait judged as one span.
_MAX_WAIT = timedelta(days=7)


def _ready_pending(view: BacklogView, phase: str) -> tuple[int, str | None]:
    """How many pending tasks of ``phase`` with dependencies are ready, and since when."""
    rows = view.pending_with_dependencies(phase, _MAX_DEPENDENT)
    deps = {row["id"]: json_list(row["depends_on"]) for row in rows}
    progress = view.task_progress(sorted({d for ids in deps.values() for d in ids}))
    ready, since = 0, None
    for row in rows:
        ids = deps[row["id"]]
        if any(progress.get(d, {}).get("state") != "completed" for d in ids):
            continue  # blocked on a dependency: not yet work for this phase
        at = max([row["created_at"], *(progress[d]["finished_at"] for d in ids)])
        ready += 1
        since = at if since is None else min(since, at)
    return ready, since


def stalled_phases(options: Settings, view: BacklogView, found: list[StuckTask]) -> list[Finding]:
    """Phases whose ready work waited all of ``stall_window`` while improbably little left."""
    cutoff = view.now - options.stall_window
    out = []
    for row in view.phase_flow(options.stall_window):
        phase = row["phase"]
        running = int(row["running"] or 0)
        pending = int(row["pending_free"] or 0)
        opened = [at for at in (row["running_since"], row["pending_free_since"]) if at]
        if int(row["pending_deps"] or 0):
            ready, since = _ready_pending(view, phase)
            pending += ready
            opened += [since] if since else []
        if running + pending < options.min_open or not opened:
            continue
        open_since = min(opened)
        if parse_ts(open_since) > cutoff:
            continue  # the work has not waited the whole window yet
        stuck_here = [s for s in found if s.task["phase"] == phase]
        if running > len(stuck_here):
            continue  # a task running within its normal time is progress
        flow = _stuck_throughput.expected_outflow(
            view, phase, options.stall_window, options.history, int(row["outflow"] or 0)
        )
        # A quiet phase shows a stall only over a longer wait: judge the whole wait too.
        waited = min(view.now - parse_ts(open_since), _MAX_WAIT)
        if waited > options.stall_window:
            longer = _stuck_throughput.expected_outflow(view, phase, waited, options.history, None)
            flow = min(flow, longer, key=lambda f: f.chance)
        if flow.chance >= options.stall_chance:
            continue
        out.append(_stalled(options, view, phase, running, pending, open_since, flow, stuck_here))
    return out


def _stalled(
    options: Settings,
    view: BacklogView,
    phase: str,
    running: int,
    pending: int,
    open_since: str,
    flow: _stuck_throughput.Throughput,
    hung: list[StuckTask],
) -> Finding:
    window = fmt_duration(flow.window)
    last_out = view.phase_last_outflow(phase)
    waiting = view.now - parse_ts(open_since)
    left = f"the last left at {last_out}" if last_out else "none has ever left it"
    days = flow.history_hours / 24
    stuck_note = ""
    if hung:
        ids = ", ".join(s.task["id"] for s in hung[:_MAX_LISTED])
        more = f" and {len(hung) - _MAX_LISTED} more" if len(hung) > _MAX_LISTED else ""
        stuck_note = (
            f"; {len(hung)} of its running tasks are stuck (their own findings): {ids}{more}"
        )
    return Finding(
        kind="stalled-phase",
        subject=f"phase:{phase}",
        summary=(
            f"Phase {phase} holds {running} running and {pending} ready pending tasks, open "
            f"for {fmt_duration(waiting)} since {open_since}, and {flow.observed} tasks left it "
            f"in the last {window} ({left}) where its last {days:.1f} days at these hours of the "
            f"week give {flow.expected:.1f} expected ({flow.history_outflow} finished, "
            f"{flow.hourly_rate:.2f} an hour overall): a chance of {flow.chance:.2g} of so few"
            f"{stuck_note}"
        ),
        evidence={
            "phase": phase,
            "running": running,
            "pending_ready": pending,
            "open_since": open_since,
            "last_left_at": last_out,
            "window_hours": round(flow.window.total_seconds() / 3600, 1),
            "observed_outflow": flow.observed,
            "expected_outflow": round(flow.expected, 2),
            "probability": float(f"{flow.chance:.3g}"),
            "history_days": round(days, 1),
            "history_outflow": flow.history_outflow,
            "hourly_rate": round(flow.hourly_rate, 3),
            "stuck": len(hung),
            "stuck_tasks": [
                {"id": s.task["id"], "since": s.task["started_at"]} for s in hung[:_MAX_LISTED]
            ],
        },
        title=f"Heal stalled phase {phase}: {flow.observed} tasks left it in {window}",
        why=(
            "When a phase holds ready work and finishes far less than it usually does at this "
            "time of the week, whatever drives it has stopped (a crashed or hung worker, an "
            "exhausted quota, a broken hand-off); the backlog behind it grows and every task "
            "in it waits."
        ),
        action=(
            f"Check the workers and the hand-off of phase {phase}: are its executors alive, do "
            "its tasks make progress, does its output reach the next phase? Restart or fix what "
            "is broken, then re-queue the tasks that hung (stuck tasks have their own findings)."
        ),
        remedy="heal",
        task_type="heal",
    )
