"""The independent family of histories behind ``bench/quality.py --family independent``."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import indep_labels
import indep_pipelines


def _grid(history: indep_pipelines.History) -> list:
    start = history.end - timedelta(hours=36)
    return [start + k * timedelta(hours=2) for k in range(19)]


def test_same_seed_same_history_and_seeds_differ() -> None:
    a = indep_pipelines.generate(3, 20, days=14).store_rows()
    b = indep_pipelines.generate(3, 20, days=14).store_rows()
    c = indep_pipelines.generate(4, 20, days=14).store_rows()
    assert a == b
    assert a != c


def test_clean_twin_holds_no_problem_and_shares_the_base() -> None:
    clean = indep_pipelines.generate(1, 20, days=14, problems=False)
    problems = indep_pipelines.generate(1, 20, days=14, problems=True)
    assert indep_labels.label(clean, _grid(clean)) == []
    # the twin is the same pipeline: its oldest tasks are the same records
    first = [t["id"] for t in clean.tasks[:50]]
    assert first == [t["id"] for t in problems.tasks[:50]]


def test_labels_point_at_records_that_exist() -> None:
    history = indep_pipelines.generate(2, 20, days=14, problems=True)
    labels = indep_labels.label(history, _grid(history))
    kinds = {lb.kind for lb in labels}
    assert {"stale", "stuck", "repeated-failure", "broken", "stalled", "budget"} <= kinds
    tasks = {t["id"] for t in history.tasks}
    tests = {r["test_id"] for r in history.tests}
    scopes = {f"{d}:{m[d]}" for m in history.metrics for d in ("model", "executor", "task_type")}
    for lb in labels:
        assert lb.episodes and lb.seen_at(lb.started_at)
        if lb.kind in ("stale", "duplicate", "starved", "stuck", "repeated-failure"):
            assert lb.subject in tasks
        elif lb.kind in ("flaky", "broken", "holdout"):
            assert lb.subject in tests
        elif lb.kind in ("spike", "error-rate", "timeout-pattern"):
            assert lb.subject in scopes
        elif lb.kind == "task-outlier":
            assert lb.subject.removeprefix("task:") in tasks
        elif lb.kind in ("stalled", "at-risk"):
            assert lb.subject.removeprefix("goal:") in history.goals
    # the injected stuck task is running, past any timeout, at the end
    stuck = next(lb for lb in labels if lb.kind == "stuck")
    task = next(t for t in history.tasks if t["id"] == stuck.subject)
    assert task["status"] == "running" and task["finished_at"] is None
