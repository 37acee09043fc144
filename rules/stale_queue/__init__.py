"""stale-queue: pending tasks that wait too long, wait in vain, or say what others say.

A queue only helps when what sits in it is wanted, distinct and moving. A task
nobody touches is either no longer wanted or blocked without saying so; a task
that newer, no more urgent work keeps overtaking is starved, so it waits for
ever while the queue looks busy; two open tasks that ask for the same thing
cost two agent runs and may produce conflicting changes. Each hides real work
and skews queue figures. This rule finds them so a human can start,
re-prioritise, merge or cancel.

Kinds
-----
``stale``
    A pending task whose last activity (creation, or any update by the
    pipeline; the reviewer's own updates, such as the labels it adds, do not
    count) is older than the idle limit for its priority.
``duplicate``
    Open (pending or running) tasks of one task type that say the same thing.
    Titles and descriptions are normalised (lower case, no punctuation or
    stopwords, inflections folded) and compared by TF-IDF cosine, so words
    every task uses weigh little. The similarity is that of the titles and,
    when both tasks have a description, also that of the whole text, whichever
    is lower; it must reach ``duplicate_min_similarity``. Numbers and ids in
    titles must agree ("Implement spec 012" and "Implement spec 013" are
    distinct), and so must the action a title asks for ("Add X" is not
    "Remove X"). Tasks of different types on one spec (spec, impl, review,
    test), tasks of different ``spec`` paths, and a task and one it depends on
    are never duplicates. One finding per group of similar tasks, about its
    oldest member.
``starved``
    A pending task, waiting at least ``starved_min_wait``, that at least
    ``starved_min_passed`` newer tasks of lower or equal priority competing
    for the same work started ahead of. Competing means the same task_type
    (two tasks without one compete), and the same phase when both have one:
    when one phase's workers are down, its pending tasks are not starved
    because other phases' tasks keep starting (stuck-phases reports the
    stalled phase). Counted from when the task was ready: its creation, or
    the finish of its last dependency. A task with a dependency that is not
    completed (or not known) is blocked, not starved, and is skipped.

Tasks labelled with one of ``exempt_labels`` are never stale or starved.

Options (defaults shown)::

    [rules.stale-queue]
    kinds = ["stale", "duplicate", "starved"]  # which kinds to look for
    max_idle = "7d"               # limit for a priority not listed below
    max_idle_by_priority = { critical = "1d", high = "3d", normal = "7d", low = "30d" }
    exempt_labels = ["blocked", "on-hold", "icebox"]  # tasks with any of these are skipped
    include_own_tasks = false     # also review tasks the reviewer filed (source = "reviewer")
    escalate_after = 3.0          # idle this many times the limit → severity "error"
    duplicate_min_similarity = 0.8  # cosine similarity (0–1) from which two tasks are duplicates
    duplicate_max_description = 2000  # characters of each description compared
    starved_min_passed = 5        # newer, no more urgent tasks of its type/phase started ahead
    starved_min_wait = "6h"       # and it has waited at least this long since it was ready

Fires: a ``high`` task created 2026-03-01 and not updated since, reviewed on
2026-03-05 (4 days idle, limit 3 days): ``stale``. Open impl tasks "Add retry
with backoff to the HTTP client" and "HTTP client: add retries with backoff":
``duplicate``. A ``normal`` impl task created 2026-03-01 and still pending
on 2026-03-03 while six ``normal`` impl tasks created after it have started:
``starved``.

Silent: the stale task labelled ``blocked``, or updated on 2026-03-04 by the
pipeline; "Implement spec 012" beside "Implement spec 013"; the starved task
when it depends on a task that is still running, or when the six that started
are review tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field

from rules.contract import Finding, RuleOptions, Severity
from store import BacklogView, Row, json_list
from store.timeutil import Duration, fmt_duration, parse_ts

ID = "stale-queue"
DEFAULTS: dict[str, object] = {"severity": "warning", "approval": "manual"}
# The option `reviewer report` suggests changing when this rule is noisy, and which way is quieter.
TUNING = {"option": "max_idle_by_priority", "quieter": "higher"}


Priority = Literal["critical", "high", "normal", "low"]
Kind = Literal["stale", "duplicate", "starved"]

# Evidence lists stay readable: a larger group or crowd is summarised by its count.
_MAX_LISTED = 20
_SAMPLE_PASSERS = 5


def _all_kinds() -> list[Kind]:
    return ["stale", "duplicate", "starved"]


def _idle_limits() -> dict[Priority, timedelta]:
    return {
        "critical": timedelta(days=1),
        "high": timedelta(days=3),
        "normal": timedelta(days=7),
        "low": timedelta(days=30),
    }


class Options(RuleOptions):
    kinds: list[Kind] = Field(default_factory=_all_kinds)
    max_idle: Duration = timedelta(days=7)
    max_idle_by_priority: dict[Priority, Duration] = Field(default_factory=_idle_limits)
    exempt_labels: list[str] = Field(default_factory=lambda: ["blocked", "on-hold", "icebox"])
    include_own_tasks: bool = False
    escalate_after: float = Field(default=3.0, gt=1.0)
    duplicate_min_similarity: float = Field(default=0.8, gt=0.0, le=1.0)
    duplicate_max_description: int = Field(default=2000, ge=0)
    starved_min_passed: int = Field(default=5, ge=1)
    starved_min_wait: Duration = timedelta(hours=6)

    def limit_for(self, priority: str | None) -> timedelta:
        return self.max_idle_by_priority.get(priority or "normal", self.max_idle)  # type: ignore[call-overload]


def check(options: Options, view: BacklogView) -> Iterator[Finding]:
    if "stale" in options.kinds:
        yield from _stale(options, view)
    if "duplicate" in options.kinds:
        yield from _duplicates(options, view)
    if "starved" in options.kinds:
        yield from _starved(options, view)


def _skipped(options: Options, task: dict[str, Any], *, by_label: bool = True) -> bool:
    if not options.include_own_tasks and task["source"] == "reviewer":
        return True
    return by_label and bool(set(options.exempt_labels).intersection(json_list(task["labels"])))


def _stale(options: Options, view: BacklogView) -> Iterator[Finding]:
    shortest = min([options.max_idle, *options.max_idle_by_priority.values()])
    exempt = set(options.exempt_labels)
    for task in view.idle_pending_tasks(shortest):
        if _skipped(options, task):
            continue
        labels = json_list(task["labels"])
        limit = options.limit_for(task["priority"])
        idle = view.now - parse_ts(task["last_activity"])
        if idle < limit:
            continue
        severity = Severity.error if idle >= limit * options.escalate_after else None
        priority = task["priority"] or "normal"
        yield Finding(
            kind="stale",
            subject=task["id"],
            severity=severity,
            summary=(
                f"{priority} task {task['id']} has been pending with no activity for "
                f"{fmt_duration(idle)} (limit for {priority}: {fmt_duration(limit)})"
            ),
            evidence={
                "title": task["title"],
                "priority": priority,
                "task_type": task["task_type"],
                "created_at": task["created_at"],
                "last_activity": task["last_activity"],
                "idle_days": round(idle.total_seconds() / 86400, 1),
                "limit_days": round(limit.total_seconds() / 86400, 1),
                "labels": labels,
            },
            title=f"Triage stale task {task['id']}: {task['title']}",
            why=(
                "A pending task nobody touches is either no longer wanted or blocked without "
                "saying so; it hides real work in the queue and skews queue-age figures."
            ),
            action=(
                f"Decide what {task['id']} needs: start it, lower its priority, or cancel it. "
                f"If it waits on something, label it one of {', '.join(sorted(exempt))} "
                "so it is exempt, and say what it waits for."
            ),
            related=[task["id"]],
        )


def _duplicates(options: Options, view: BacklogView) -> Iterator[Finding]:
    # TF-IDF loads numpy and scipy: imported here, not at the top (see rules/__init__.py).
    from rules.stale_queue.similarity import duplicate_groups

    tasks = [
        t
        for t in view.open_task_texts(options.duplicate_max_description)
        if not _skipped(options, t, by_label=False)
    ]
    for members, scores in duplicate_groups(tasks, options.duplicate_min_similarity):
        keep, rest = members[0], members[1:]
        low, high = min(p["similarity"] for p in scores), max(p["similarity"] for p in scores)
        spread = f"{low:.2f}" if low == high else f"{low:.2f}–{high:.2f}"
        kind = keep["task_type"] or "untyped"
        others = ", ".join(t["id"] for t in rest[:-1])
        others = f"{others} and {rest[-1]['id']}" if others else rest[-1]["id"]
        yield Finding(
            kind="duplicate",
            subject=keep["id"],
            summary=(
                f"{len(members)} open {kind} tasks say the same thing (similarity {spread}): "
                + "; ".join(f"{t['id']} {t['title']!r}" for t in members[:_MAX_LISTED])
            ),
            evidence={
                "task_type": keep["task_type"],
                "size": len(members),
                "members": [
                    {k: t[k] for k in ("id", "title", "state", "priority", "created_at")}
                    for t in members[:_MAX_LISTED]
                ],
                "similarities": scores[:_MAX_LISTED],
                "threshold": options.duplicate_min_similarity,
            },
            title=f"Merge duplicate tasks into {keep['id']}: {keep['title']}",
            why=(
                "Open tasks that ask for the same thing cost an agent run each, can make "
                "conflicting changes to the same code, and inflate the backlog and the "
                "progress figures planned from it."
            ),
            action=(
                f"Keep {keep['id']} (the oldest), fold anything the others add into it, and "
                f"cancel {others} as duplicates of it. If they really differ, say how in "
                "their titles so the difference is visible."
            ),
            related=[t["id"] for t in members],
        )


def _starved(options: Options, view: BacklogView) -> Iterator[Finding]:
    need = options.starved_min_passed
    waiting: list[tuple[Row, str, timedelta]] = []
    for task in view.passed_over_tasks(options.starved_min_wait, need):
        if _skipped(options, task):
            continue
        ready = task["created_at"]
        deps = json_list(task["depends_on"])
        if deps:
            progress = view.task_progress(deps)
            if any(progress.get(d, {}).get("state") != "completed" for d in deps):
                continue  # blocked, not starved: waiting on a dependency is its job
            ready = max([ready, *(progress[d]["finished_at"] for d in deps)])
        waited = view.now - parse_ts(ready)
        if waited < options.starved_min_wait:
            continue
        waiting.append((task, ready, waited))
    # One pass counts the passers of every waiting task (one query each is tasks x backlog).
    ahead = view.started_ahead_of_many({t["id"]: ready for t, ready, _ in waiting}, _SAMPLE_PASSERS)
    for task, ready, waited in waiting:
        passed, sample = ahead.get(task["id"], (0, []))
        if passed < need:
            continue
        priority = task["priority"] or "normal"
        kind = task["task_type"] or "untyped"
        since = (
            "since it was created"
            if ready == task["created_at"]
            else f"since its last dependency finished ({ready})"
        )
        yield Finding(
            kind="starved",
            subject=task["id"],
            summary=(
                f"{priority} {kind} task {task['id']} has waited {fmt_duration(waited)} {since} "
                f"while {passed} newer {kind} tasks of equal or lower priority started ahead of it "
                f"(threshold {need}); the first: {', '.join(p['id'] for p in sample)}"
            ),
            evidence={
                "title": task["title"],
                "priority": priority,
                "task_type": task["task_type"],
                "created_at": task["created_at"],
                "ready_since": ready,
                "waited_days": round(waited.total_seconds() / 86400, 1),
                "passed_over_by": passed,
                "threshold": need,
                "first_passed_by": sample,
            },
            title=f"Find out why task {task['id']} keeps being passed over: {task['title']}",
            why=(
                "Newer work that is no more urgent keeps starting first, so this task may never "
                "run while the queue looks busy and healthy. Something about it makes workers "
                "skip it: a precondition they cannot meet, an executor that never picks its "
                "type, or a priority that is wrong."
            ),
            action=(
                f"Find why workers skip {task['id']} and fix that; or start it by hand, raise "
                "its priority, or cancel it if it is no longer wanted. If it waits on "
                "something, record that in depends_on or label it one of "
                f"{', '.join(sorted(options.exempt_labels))}."
            ),
            related=[task["id"], *(p["id"] for p in sample)],
        )
