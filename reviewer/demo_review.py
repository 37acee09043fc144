"""The demo's problems for the rules that review how the pipeline is run (issue 11).

``reviewer.simulate`` grows the demo's history; this adds, beside it, one
small deterministic example of each kind of ``priorities``, ``review-audit``,
``test-health`` and ``backlog-hygiene`` that the simulated history does not
produce by itself: a dependency cycle, a review that passed failing tests,
coverage reports with a drop, a test the runs stopped including, an epic; and
two tasks hung or failing on the broken executor runner-c, so the demo shows
an incident.
These are examples for the demo, not labelled problems: ``bench/quality.py``
does not score them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from store import Store
from store.records import TaskRecord
from store.timeutil import fmt_ts

# Every kind these rules have; the demo shows each (tests/test_simulate.py checks).
REVIEW_KINDS: tuple[tuple[str, str], ...] = (
    ("priorities", "cycle"),
    ("priorities", "blocked"),
    ("priorities", "missing-dependency"),
    ("priorities", "reorder"),
    ("review-audit", "inconsistent"),
    ("review-audit", "no-decision"),
    ("review-audit", "impl-vs-spec"),
    ("test-health", "coverage-drop"),
    ("test-health", "low-coverage"),
    ("test-health", "excluded-tests"),
    ("backlog-hygiene", "failure-signature"),
    ("backlog-hygiene", "oversized"),
    ("backlog-hygiene", "no-acceptance"),
    ("backlog-hygiene", "low-value"),
)

_SPEC = "0900-export-audit-log.md"
_SERVICE = "api/app/services/export_audit_log.py"
_ROUTER = "api/app/routers/export_audit_log.py"
_TEST_FILE = "api/tests/test_export_audit_log.py"
_COMMIT = "c0ffee5e1f0a2b3c4d5e6f708192a3b4c5d6e7f8"
_SPEC_TEXT = f"""# Spec: Export the audit log

## Purpose

Let operators export the reviewer's audit log as CSV for their own records.

## Requirements

- [ ] **Export** — `GET /api/audit.csv` returns the audit log as CSV
- [ ] **Filter** — by date range and actor

## Files to Create/Modify

- `{_SERVICE}` — build the CSV
- `{_ROUTER}` — serve it

## Acceptance Tests

- `GET /api/audit.csv?since=2026-03-01` returns a CSV with a header row and one row per entry
"""

_EPIC = "\n\n".join(
    f"## Part {n}: {topic}\n\n"
    + " ".join(
        f"The {topic.lower()} work must handle case {i} of the migration, keep the old "
        "behaviour behind a flag, log what it did and be covered by tests."
        for i in range(1, 40)
    )
    for n, topic in enumerate(
        ["Storage", "API", "Dashboard", "Notifications", "Migration", "Docs"], start=1
    )
)


def add_review_problems(store: Store, *, repo_dir: Path, specs_dir: Path, end: datetime) -> None:
    """Write the examples into the demo's store and workspace, dated before ``end``."""

    def at(**ago: float) -> str:
        return fmt_ts(end - timedelta(**ago))

    _write(specs_dir / _SPEC, _SPEC_TEXT, end - timedelta(days=12))
    _write(repo_dir / _SERVICE, "def export_csv(rows):\n    ...\n", end - timedelta(days=9))
    _write(repo_dir / _ROUTER, "# routes for the audit export\n", end - timedelta(days=9))
    _write(
        repo_dir / _TEST_FILE,
        "def test_export_roundtrip():\n    assert True\n\n\n"
        "def test_export_large():\n    assert True\n",
        end - timedelta(days=20),
    )
    tasks: list[dict[str, Any]] = [
        # priorities
        _task("task-cycle-a", "Split the metrics store by tenant", at(days=2), ["task-cycle-b"]),
        _task("task-cycle-b", "Add tenant ids to task metrics", at(days=2), ["task-cycle-a"]),
        _task("task-orphan-01", "Wire the audit export", at(days=2), ["task-0999-gone"]),
        _task(
            "task-urgent-01",
            "Fix the goal dashboard",
            at(days=1),
            ["task-someday-01"],
            priority="high",
        ),
        _task("task-someday-01", "Tidy the dashboard CSS", at(days=6), priority="low"),
        # an incident: work hung on runner-c, the executor the simulated history breaks
        _task(
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
        _task(
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
        # review-audit
        _task(
            "task-audit-impl",
            "Implement the audit export",
            at(days=3),
            task_type="impl",
            spec=_SPEC,
            status="completed",
            started_at=at(days=2, hours=6),
            finished_at=at(days=2),
            files_changed=[_SERVICE],
        ),
        _task(
            "task-audit-review",
            "Review the audit export",
            at(days=2),
            task_type="review",
            status="completed",
            started_at=at(days=1, hours=4),
            finished_at=at(days=1),
            review_decision="pass",
            review_rationale="Looks complete.",
            commit=_COMMIT,
        ),
        # backlog-hygiene
        _task(
            "task-epic-01", "Multi-tenant pipeline", at(days=4), description=_EPIC, task_type="impl"
        ),
        _task(
            "task-launch-01",
            "Launch the public dashboard",
            at(days=25),
            status="completed",
            started_at=at(days=14),
            finished_at=at(days=12),
        ),
        _task(
            "task-leftover-01",
            "Dashboard: animate the progress bars",
            at(days=20),
            priority="low",
            goal_id="task-launch-01",
        ),
    ]
    store.upsert_tasks([TaskRecord.model_validate(t).row() for t in tasks])
    store.upsert_test_results(
        [
            _result(
                "demo-audit-run",
                "api.tests.test_export_audit_log",
                "test_csv_header",
                _COMMIT,
                "failed",
                at(days=1, hours=6),
                _TEST_FILE,
            ),
            _result(
                "demo-audit-run",
                "api.tests.test_export_audit_log",
                "test_export_roundtrip",
                _COMMIT,
                "passed",
                at(days=1, hours=6),
                _TEST_FILE,
            ),
        ]
        + [
            _result(
                f"demo-old-run-{n}",
                "api.tests.test_export_audit_log",
                "test_export_large",
                "b4d5e6f",
                "passed",
                at(days=days),
                _TEST_FILE,
            )
            for n, days in enumerate((24, 21, 18), start=1)
        ]
    )
    # Five commits of main: about 82% line coverage, then 71% at the last one.
    coverage = []
    for n, (days, base) in enumerate([(6, 820), (5, 823), (4, 818), (3, 821), (1, 760)]):
        sha = f"{n + 1:02d}" + _COMMIT[2:]
        for file, valid, hit in (("api/app/main.py", 1000, base), (_SERVICE, 120, 36)):
            coverage.append(
                {
                    "commit_sha": sha,
                    "branch": "main",
                    "file": file,
                    "lines_valid": valid,
                    "lines_covered": hit,
                    "branches_valid": 0,
                    "branches_covered": 0,
                    "recorded_at": at(days=days),
                }
            )
    store.upsert_coverage(coverage)


def _task(
    tid: str, title: str, created: str, deps: list[str] | None = None, **kw: Any
) -> dict[str, Any]:
    return {
        "id": tid,
        "title": title,
        "description": kw.pop("description", f"{title}."),
        "task_type": kw.pop("task_type", "heal"),
        "created_at": created,
        "updated_at": kw.get("finished_at", created),
        "depends_on": deps or [],
        "source": "pipeline",
        **kw,
    }


def _result(
    run: str, cls: str, name: str, sha: str, outcome: str, ran: str, file: str
) -> dict[str, Any]:
    return {
        "run_id": run,
        "test_id": f"{cls}::{name}",
        "classname": cls,
        "name": name,
        "commit_sha": sha,
        "branch": "main",
        "outcome": outcome,
        "duration_seconds": 0.4,
        "message": "AssertionError: header row missing" if outcome == "failed" else None,
        "file": file,
        "ran_at": ran,
    }


def _write(path: Path, text: str, when: datetime) -> None:
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))
