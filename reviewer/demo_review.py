"""The demo's problems for the rules that review how the pipeline is run (issue 11).

``reviewer.simulate`` grows the demo's history and, with it, one small
deterministic example of each kind of ``priorities``, ``review-audit``,
``test-health`` and ``backlog-hygiene`` (``reviewer/sim/review.py``, which the
benchmark scores too). This writes those examples (again, the same rows) and
adds two tasks hung or failing on the broken executor runner-c, so the demo
shows an incident. The incident is the demo's own: ``bench/quality.py`` does
not score it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from reviewer.sim.review import REVIEW_KINDS, example_task, review_problems
from store import Store
from store.records import TaskRecord
from store.timeutil import fmt_ts

__all__ = ["REVIEW_KINDS", "add_review_problems"]


def add_review_problems(store: Store, *, repo_dir: Path, specs_dir: Path, end: datetime) -> None:
    """Write the examples into the demo's store and workspace, dated before ``end``."""

    def at(**ago: float) -> str:
        return fmt_ts(end - timedelta(**ago))

    review_problems(end).write(store, repo_dir=repo_dir, specs_dir=specs_dir)
    tasks: list[dict[str, Any]] = [
        # an incident: work hung on runner-c, the executor the simulated history breaks
        example_task(
            "task-stuck-c1",
            "Stream the audit export in chunks",
            at(hours=6, minutes=30),
            task_type="impl",
            phase="impl",
            status="running",
            started_at=at(hours=6),
            priority="high",
            attempts=1,
            executor="runner-c",
            model="claude",
        ),
        example_task(
            "task-fail-c1",
            "Backfill the audit export's history",
            at(hours=6),
            task_type="impl",
            phase="impl",
            status="failed",
            started_at=at(hours=5),
            finished_at=at(hours=4),
            priority="high",
            attempts=3,
            executor="runner-c",
            model="claude",
            error="runner-c: git worktree add failed: No space left on device",
        ),
    ]
    store.upsert_tasks([TaskRecord.model_validate(t).row() for t in tasks])
