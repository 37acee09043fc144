"""stale-queue: pending tasks that nobody has touched for too long.

A task that sits in the queue untouched is either no longer wanted or blocked
without saying so. Either way it hides real work, skews queue-age figures and
misleads whoever plans from the backlog. This rule finds them so a human can
start, re-prioritise or cancel each one.

Kinds
-----
``stale``
    A pending task whose last activity (creation, or any update by the
    pipeline; the reviewer's own updates, such as the labels it adds, do not
    count) is older than the idle limit for its priority.

Options (defaults shown)::

    [rules.stale-queue]
    max_idle = "7d"               # limit for a priority not listed below
    max_idle_by_priority = { critical = "1d", high = "3d", normal = "7d", low = "30d" }
    exempt_labels = ["blocked", "on-hold", "icebox"]  # tasks with any of these are skipped
    include_own_tasks = false     # also review tasks the reviewer filed (source = "reviewer")
    escalate_after = 3.0          # idle this many times the limit → severity "error"

Fires: a ``high`` task created 2026-03-01 and not updated since, reviewed on
2026-03-05 (4 days idle, limit 3 days).

Silent: the same task labelled ``blocked``; or updated on 2026-03-04 by the
pipeline (one day idle); or a ``low`` task idle for 20 days (limit 30 days).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Literal

from pydantic import Field

from reviewer.models import Finding, Severity
from reviewer.rule import RuleOptions
from reviewer.timeutil import Duration, fmt_duration, parse_ts
from store._view import BacklogView, json_list

ID = "stale-queue"
DEFAULTS: dict[str, object] = {"severity": "warning", "approval": "manual"}


Priority = Literal["critical", "high", "normal", "low"]


class Options(RuleOptions):
    max_idle: Duration = timedelta(days=7)
    max_idle_by_priority: dict[Priority, Duration] = Field(
        default_factory=lambda: {
            "critical": timedelta(days=1),
            "high": timedelta(days=3),
            "normal": timedelta(days=7),
            "low": timedelta(days=30),
        }
    )
    exempt_labels: list[str] = Field(default_factory=lambda: ["blocked", "on-hold", "icebox"])
    include_own_tasks: bool = False
    escalate_after: float = Field(default=3.0, gt=1.0)

    def limit_for(self, priority: str | None) -> timedelta:
        return self.max_idle_by_priority.get(priority or "normal", self.max_idle)  # type: ignore[call-overload]


def check(options: Options, view: BacklogView) -> Iterator[Finding]:
    shortest = min([options.max_idle, *options.max_idle_by_priority.values()])
    exempt = set(options.exempt_labels)
    for task in view.idle_pending_tasks(shortest):
        if not options.include_own_tasks and task["source"] == "reviewer":
            continue
        labels = json_list(task["labels"])
        if exempt.intersection(labels):
            continue
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
