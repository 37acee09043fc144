"""The demo's earlier reviews, so its report has outcomes the engine judged itself.

Ten days before the end of the demo's history, two problems sat in the backlog:
a task depending on an id no task has, and two tasks depending on each other.
``add_earlier_reviews`` runs the real engine at that instant with ``priorities``
on ``auto`` (and only it, only those two kinds), so it files a task for each.
Then the history goes on as a pipeline would: the first filed task completes,
its fix lands (the dependency is dropped) and the task then runs; the second is
cancelled together with the two tasks of the cycle. Two more reviews a day apart
follow. The demo's own review, at the end, is the third cycle after the
completed task, with the finding clear for more than ``outcome_clear_for`` (7
days): the engine judges it ``fixed``; the cancelled one it judged ``abandoned``
the day after.
Nothing here writes an outcome: the engine does, in ``reviewer/outcomes.py``.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reviewer.app import App
from reviewer.config import config_from_dict
from store import ReviewerState
from store.records import TaskRecord
from store.timeutil import fmt_ts

# How long before the end of the history the reviewer first looked.
EARLIER = timedelta(days=10)
_ORPHAN = "task-old-orphan"
_CYCLE = ("task-old-cycle-a", "task-old-cycle-b")


def add_earlier_reviews(data: dict[str, Any], config_path: Path, end: datetime) -> None:
    """Seed the two earlier problems, review them as of ``end - EARLIER`` and later, and
    complete or cancel the filed tasks in between. ``data`` is the demo's config."""
    first = end - EARLIER
    earlier = copy.deepcopy(data)
    for rule_id, table in earlier["rules"].items():
        table["enabled"] = rule_id == "priorities"
    earlier["rules"]["priorities"].update(approval="auto", kinds=["missing-dependency", "cycle"])
    config = config_from_dict(earlier, config_path)
    with App.from_config(config) as app:
        _seed(app, first - timedelta(days=1))
        app.engine.review(first, trigger="demo")
        filed = {p.fingerprint: p for p in _scheduled(app)}
        fixed = next(p for p in filed.values() if p.subject == _ORPHAN)
        dropped = next(p for p in filed.values() if p.subject in _CYCLE)
        done, cancelled = first + timedelta(hours=2), first + timedelta(hours=3)
        _set_task(app, fixed.task_id, "completed", first + timedelta(hours=1), done)
        # the fix: the orphan's dangling dependency dropped, then it ran
        _set_task(
            app,
            _ORPHAN,
            "completed",
            first + timedelta(hours=4),
            first + timedelta(hours=7),
            depends_on=[],
        )
        _set_task(app, dropped.task_id, "cancelled", None, cancelled)
        for tid in _CYCLE:
            _set_task(app, tid, "cancelled", None, cancelled)
        for day in (1, 2):
            app.engine.review(first + timedelta(days=day), trigger="demo")


def _seed(app: App, created: datetime) -> None:
    at = fmt_ts(created)
    rows = [
        _row(_ORPHAN, "Publish the weekly cost digest", at, ["task-0777-gone"]),
        _row(_CYCLE[0], "Move goal targets into the store", at, [_CYCLE[1]]),
        _row(_CYCLE[1], "Read goal targets from the store", at, [_CYCLE[0]]),
    ]
    app.store.upsert_tasks([TaskRecord.model_validate(r).row() for r in rows])


def _row(tid: str, title: str, at: str, deps: list[str]) -> dict[str, Any]:
    return {
        "id": tid,
        "title": title,
        "description": f"{title}.",
        "task_type": "impl",
        "status": "pending",
        "priority": "normal",
        "created_at": at,
        "updated_at": at,
        "depends_on": deps,
        "source": "pipeline",
    }


def _scheduled(app: App) -> list[Any]:
    return ReviewerState(app.store).proposals(state="scheduled", rule="priorities")


def _set_task(
    app: App,
    task_id: str | None,
    status: str,
    started: datetime | None,
    finished: datetime | None,
    *,
    depends_on: list[str] | None = None,
) -> None:
    """What the pipeline did to a task: its new status, times, and dependencies."""
    assert task_id is not None
    row = app.store.get_task(task_id)
    assert row is not None, task_id
    row = dict(row)
    row["status"] = status
    if started is not None:
        row["started_at"] = fmt_ts(started)
    if finished is not None:
        row["finished_at"] = fmt_ts(finished)
    if depends_on is not None:
        row["depends_on"] = json.dumps(depends_on)
    row["updated_at"] = fmt_ts(finished or started or datetime.now(UTC))
    app.store.upsert_tasks([row])
