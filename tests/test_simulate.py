"""The history generator behind ``reviewer demo`` and ``bench/quality.py``."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sim_labels import simulate_labelled as simulate  # the judged labels (bench/)

from reviewer.cli import cli
from reviewer.sim import ALL_KINDS, Labels
from store.sqlite import SQLiteStore

SMALL: dict[str, Any] = {"days": 10, "tasks_per_day": 16, "noise": 0.5}


def _build(
    tmp: Path, *, seed: int = 7, problems: bool | list[str] = True
) -> tuple[SQLiteStore, Labels]:
    store = SQLiteStore(":memory:")
    labels = simulate(store, workspace=tmp, seed=seed, problems=problems, **SMALL)
    return store, labels


def _dump(store: SQLiteStore) -> dict[str, list[dict[str, Any]]]:
    return {
        "tasks": store.query("SELECT * FROM tasks ORDER BY id"),
        "metrics": store.query("SELECT * FROM task_metrics ORDER BY task_id, created_at"),
        "tests": store.query("SELECT * FROM test_results ORDER BY run_id, test_id"),
    }


def _files(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(root)): (p.read_text(), int(p.stat().st_mtime))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_same_seed_same_history(tmp_path: Path) -> None:
    a, la = _build(tmp_path / "a")
    b, lb = _build(tmp_path / "b")
    assert _dump(a) == _dump(b)
    assert la.labels == lb.labels and la.rule_options == lb.rule_options and la.goals == lb.goals
    assert _files(la.repo_dir) == _files(lb.repo_dir)
    c, _ = _build(tmp_path / "c", seed=8)
    assert _dump(c)["tasks"] != _dump(a)["tasks"]


def test_labels_point_at_records_that_exist(tmp_path: Path) -> None:
    store, labels = _build(tmp_path)
    kinds = {(label.rule, label.kind) for label in labels.labels}
    # this small pipeline is too quiet for a few kinds (e.g. >= 10 runs of a model in 6h)
    assert len(kinds) >= len(ALL_KINDS) - 4
    task_ids = {r["id"] for r in store.query("SELECT id FROM tasks")}
    test_ids = {r["test_id"] for r in store.query("SELECT DISTINCT test_id FROM test_results")}
    for label in labels.labels:
        scope, _, name = label.subject.partition(":")
        if label.rule == "spec-drift" or label.kind == "low-coverage":
            assert (labels.specs_dir / label.subject).is_file(), label
        elif scope == "branch":
            rows = store.query("SELECT 1 FROM coverage WHERE branch = :b LIMIT 1", {"b": name})
            assert rows, label
        elif label.rule == "flaky-tests" or label.kind == "excluded-tests":
            assert label.subject in test_ids, label
        elif label.rule == "goal-progress":
            assert scope == "goal" and name in labels.goals, label
        elif scope == "task":
            assert name in task_ids, label
        elif scope in ("model", "executor", "task_type", "phase"):
            column = "phase" if scope == "phase" else scope
            rows = store.query(f"SELECT 1 FROM tasks WHERE {column} = :v LIMIT 1", {"v": name})
            assert rows, label
        elif label.subject != "all":
            assert label.subject in task_ids, label
        assert labels.start.strftime("%Y-%m-%d") <= label.started_at[:10], label
        assert label.started_at <= labels.end.strftime("%Y-%m-%dT%H:%M:%SZ"), label


def test_every_review_kind_is_labelled_and_only_when_asked(tmp_path: Path) -> None:
    from reviewer.sim.review import REVIEW_KINDS

    _, labels = _build(tmp_path)
    found = {(label.rule, label.kind) for label in labels.labels}
    assert set(REVIEW_KINDS) <= found, set(REVIEW_KINDS) - found
    # the judged kinds hold at their injected subject at the end of the history
    end = labels.end.strftime("%Y-%m-%dT%H:%M:%SZ")
    judged = {(x.kind, x.subject) for x in labels.labels if x.seen_at(end)}
    for pair in [
        ("blocked", "task-stale-01"),
        ("no-acceptance", "task-epic-01"),
        ("no-decision", "task_type:review"),
    ]:
        assert pair in judged, pair
    # asked for one kind, the history holds that example and none of the others
    _, only = _build(tmp_path / "one", problems=["cycle"])
    assert {x.key for x in only.labels} == {("priorities", "cycle", "task-cycle-a")}


def test_the_labeller_judges_without_the_rules() -> None:
    import sim_labels

    source = Path(sim_labels.__file__).read_text()
    assert "from rules" not in source and "import rules" not in source
    sig = sim_labels.signature
    assert sig("Timeout: agent run exceeded 812s and was killed") == sig(
        "Timeout: agent run exceeded 1500s and was killed"
    )
    assert sig("Lint failed: ruff found 3 errors in api/a_0001.py") == (
        "Lint failed: ruff found <n> errors in <path>"
    )
    traceback = "Traceback (most recent call last):\n  x\nKeyError: 'missing'"
    assert sig(traceback) == "KeyError: 'missing'"


def test_clean_history_has_no_injected_problem(tmp_path: Path) -> None:
    store, labels = _build(tmp_path, problems=False)
    assert labels.labels == []
    end = labels.end.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert store.query("SELECT id FROM tasks WHERE attempts > 2") == []
    # nothing runs for hours: runs longer than their timeout are killed
    hours_ago = (labels.end - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    running = "SELECT id FROM tasks WHERE status = 'running' AND started_at < :t"
    assert store.query(running, {"t": hours_ago}) == []
    assert store.query("SELECT id FROM tasks WHERE source <> 'pipeline'") == []
    assert all(r["created_at"] <= end for r in store.query("SELECT created_at FROM tasks"))
    # tests are skipped briefly or not at all, and never fail on every run
    worst = store.query(
        """SELECT test_id, MIN(ran_at) AS first, MAX(ran_at) AS last FROM test_results
           WHERE outcome = 'skipped' GROUP BY test_id ORDER BY last DESC"""
    )
    for row in worst:
        assert row["last"][:10] >= row["first"][:10]
    failing = store.query(
        "SELECT test_id, COUNT(*) AS n FROM test_results WHERE outcome = 'failed'"
        " GROUP BY test_id HAVING n > 2"
    )
    assert failing == []
    for spec in labels.specs_dir.glob("*.md"):
        text = spec.read_text()
        for section in ("## Purpose", "## Requirements", "## Files to Create/Modify"):
            assert section in text, spec
        assert "## Acceptance Tests" in text, spec
    budget = labels.rule_options["usage-spikes"]["daily_budget_usd"]
    spent = store.query("SELECT MAX(s) AS m FROM (SELECT SUM(cost_usd) AS s FROM task_metrics"
                        " GROUP BY substr(created_at, 1, 10))")[0]["m"]  # fmt: skip
    assert spent < budget
    changed = [
        json.loads(r["files_changed"]) for r in store.query("SELECT files_changed FROM tasks")
    ]
    assert all("api/app/main.py" not in files for files in changed)


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    pinned = ["--end", "2026-04-01T18:00:00Z"]
    result = CliRunner().invoke(cli, ["demo", "--db", str(db), *pinned])
    assert result.exit_code == 0, result.output
    assert "finding(s)" in result.output
    assert "from 2026-03-05 to 2026-04-01 18:00 UTC" in result.output
    assert "stale-queue/stale" in result.output
    assert "proposals approve" in result.output
    assert (tmp_path / "demo-workspace" / "config.toml").is_file()
    # Every kind of every rule shows up in the demo.
    from reviewer.demo_review import REVIEW_KINDS
    from reviewer.sim import ALL_KINDS

    for rule_id, kind in ALL_KINDS + REVIEW_KINDS:
        assert f"{rule_id}/{kind}" in result.output, f"{rule_id}/{kind} missing from the demo"
    # ...the incident on the broken executor, with its symptoms inhibited...
    assert "Incident on executor:runner-c: Pause executor runner-c" in result.output
    assert "stuck-phases/stuck              task-stuck-c1 [new, inhibited by incident" in (
        result.output
    )
    # ...and an excerpt of the report, with outcomes the engine judged in earlier reviews.
    report = result.output[result.output.index("--- from `reviewer --config") :]
    assert "RULE             FINDINGS  PROPOSALS  AUTO  FIXED  NOT-FIXED  ABANDONED" in report
    assert re.search(r"\npriorities +\d+ +\d+ +2 +1 +0 +1 ", report), report
    fixed = r"proposal #\d+ \(priorities\) fixed: the finding has not fired since"
    assert re.search(fixed, report)
    abandoned = r"proposal #\d+ \(priorities\) abandoned: task reviewer-\d+ was cancelled"
    assert re.search(abandoned, report)
    with SQLiteStore(db) as store:
        audited = store.query(
            "SELECT to_state, actor FROM reviewer_audit WHERE action = 'proposal.outcome'"
            " ORDER BY to_state"
        )
    assert [(r["to_state"], r["actor"]) for r in audited] == [
        ("abandoned", "reviewer"),
        ("fixed", "reviewer"),
    ]
    # Running it again replaces its own store, and gives the same demo.
    again = CliRunner().invoke(cli, ["demo", "--db", str(db), *pinned])
    assert again.exit_code == 0, again.output
    assert _without_timings(again.output) == _without_timings(result.output)


def _without_timings(out: str) -> str:
    return re.sub(r"\d+\.\d+ s\b", "N s", out)


def test_demo_never_replaces_a_store_it_did_not_build(tmp_path: Path) -> None:
    from store.sqlite import SQLiteStore

    real = tmp_path / "pipeline.db"
    with SQLiteStore(real) as store:
        store.upsert_tasks(
            [
                {
                    "id": "t1",
                    "title": "Real work",
                    "created_at": "2026-01-01T00:00:00Z",
                    "status": "pending",
                    "priority": "normal",
                    "attempts": 0,
                }
            ]
        )
    result = CliRunner().invoke(cli, ["demo", "--db", str(real)])
    assert result.exit_code == 1
    assert "is not a demo store" in result.stderr and "nothing was changed" in result.stderr
    with SQLiteStore(real) as store:
        assert store.get_task("t1") is not None


@pytest.mark.slow
def test_breaker_labels_record_when_the_breaker_was_open(tmp_path: Path) -> None:
    """error-rate labels carry the spans the breaker was open, so a replay knows what it
    could see; the dead-letter task's failures are placed at their own times."""
    store = SQLiteStore(":memory:")
    labels = simulate(store, workspace=tmp_path, seed=0, days=14, tasks_per_day=80, noise=0.8)
    breakers = [x for x in labels.labels if x.kind == "error-rate"]
    assert breakers
    for label in breakers:
        assert label.episodes and label.started_at == label.episodes[0][0]
        ends = [b for _, b in label.episodes]
        assert all(b is not None for b in ends[:-1])  # only the last may still be open
        for a, b in label.episodes:
            assert b is None or a < b
            assert label.seen_at(a) and (b is None or not label.seen_at(b))
    # the injected dead letter failed 11h, 10h and 9h before the end, not at the end
    fails = store.query(
        "SELECT created_at FROM task_metrics WHERE task_id = 'task-fail-01' ORDER BY created_at"
    )
    end = labels.end
    assert [r["created_at"] for r in fails] == [
        (end - timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in (11, 10, 9)
    ]
