"""The generator's problems for the rules that review how the pipeline is run (issue 11).

One small example of each kind of ``priorities``, ``review-audit``,
``test-health`` and ``backlog-hygiene``, dated before the history's end: a
dependency cycle, a task on a missing id, urgent work waiting on a
low-priority task, a review that passed failing tests, an impl that skipped a
file of its spec, coverage reports with a drop and a spec'd file barely
covered, a test the runs stopped including, an epic, and a low-priority
leftover of a finished goal. ``simulate()`` adds the ones asked for, each
beginning at a seeded hour of the history's last day, and labels them at their
subject and time (``ReviewProblems.labels``); ``reviewer demo`` writes all of
them at fixed times (``reviewer/demo_review.py``).

Kinds whose truth must be judged from the records are not labelled here but
recorded as injections (``ReviewProblems.injections``, and in ``simulate()``):
a ``blocked`` task (the stale-queue example's dead dependency), items without
acceptance criteria, the share of reviews without a decision (the one review
here records a decision, so the pipeline uses the convention and its other
reviews do not), and failure signatures (the injected test timeouts).
``bench/sim_labels.py`` judges them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from store.base import Store
from store.records import TaskRecord
from store.timeutil import fmt_ts

# Every kind these rules have; the generator injects each (tests/test_simulate.py checks).
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


@dataclass
class ReviewProblems:
    """The rows and files of the examples, and the labels of those labelled where injected.

    ``labels`` are ``(rule, kind, subject, started_at)``, ``injections`` the same for
    the kinds ``bench/sim_labels.py`` judges from the records; ``files`` are
    ``(path under the repository, text, modified at)``, the spec's path under
    ``specs/``.
    """

    tasks: list[dict[str, Any]] = field(default_factory=list)
    test_results: list[dict[str, Any]] = field(default_factory=list)
    coverage: list[dict[str, Any]] = field(default_factory=list)
    files: list[tuple[str, str, datetime]] = field(default_factory=list)
    labels: list[tuple[str, str, str, str]] = field(default_factory=list)
    injections: list[tuple[str, str, str, str]] = field(default_factory=list)

    def write(self, store: Store, *, repo_dir: Path, specs_dir: Path) -> None:
        """Write the rows into ``store`` and the files into the workspace."""
        self.write_files(repo_dir=repo_dir, specs_dir=specs_dir)
        if self.tasks:
            store.upsert_tasks(self.tasks)
        if self.test_results:
            store.upsert_test_results(self.test_results)
        if self.coverage:
            store.upsert_coverage(self.coverage)

    def write_files(self, *, repo_dir: Path, specs_dir: Path) -> None:
        """Write the spec, code and test files, dated."""
        for rel, text, when in self.files:
            path = specs_dir / rel[len("specs/") :] if rel.startswith("specs/") else repo_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            os.utime(path, (when.timestamp(), when.timestamp()))


def review_problems(
    end: datetime, kinds: set[str] | None = None, rng: np.random.Generator | None = None
) -> ReviewProblems:
    """The examples of ``kinds`` (names as in ``REVIEW_KINDS``; None for all), before ``end``.

    Without ``rng`` each problem begins at the same time before ``end`` (the demo's
    examples); with it, at a seeded time in the last 22 hours, so a replay of the
    last day sees it begin.
    """
    want = {k for _, k in REVIEW_KINDS} if kinds is None else kinds
    out = ReviewProblems()

    def shifted(days: float) -> Any:
        """``at(**ago)`` for an example whose problem begins ``days`` before the end,
        moved with ``rng`` to begin at a seeded hour of the last day instead."""
        lead = timedelta(days=days) if rng is None else timedelta(hours=rng.uniform(1, 22))
        shift = timedelta(days=days) - lead

        def at(**ago: float) -> str:
            return fmt_ts(end - timedelta(**ago) + shift)

        return at

    at = shifted(0)

    def label(rule: str, kind: str, subject: str, started: str) -> None:
        if kind in want:
            out.labels.append((rule, kind, subject, started))

    tasks: list[dict[str, Any]] = []
    # priorities
    if "cycle" in want:
        at = shifted(2)
        tasks.append(
            example_task(
                "task-cycle-a", "Split the metrics store by tenant", at(days=2), ["task-cycle-b"]
            )
        )
        tasks.append(
            example_task(
                "task-cycle-b", "Add tenant ids to task metrics", at(days=2), ["task-cycle-a"]
            )
        )
        label("priorities", "cycle", "task-cycle-a", at(days=2))
    if "missing-dependency" in want:
        at = shifted(2)
        tasks.append(
            example_task("task-orphan-01", "Wire the audit export", at(days=2), ["task-0999-gone"])
        )
        label("priorities", "missing-dependency", "task-orphan-01", at(days=2))
    if "reorder" in want:
        at = shifted(1)
        tasks.append(
            example_task(
                "task-urgent-01",
                "Fix the goal dashboard",
                at(days=1),
                ["task-someday-01"],
                priority="high",
            )
        )
        tasks.append(
            example_task("task-someday-01", "Tidy the dashboard CSS", at(days=6), priority="low")
        )
        label("priorities", "reorder", "task-someday-01", at(days=1))
    # review-audit and test-health share the audit export's spec, files and tests
    audit = want & {"inconsistent", "no-decision", "impl-vs-spec", "low-coverage", "coverage-drop"}
    if audit:
        out.files.append((f"specs/{_SPEC}", _SPEC_TEXT, end - timedelta(days=12)))
        out.files.append((_SERVICE, "def export_csv(rows):\n    ...\n", end - timedelta(days=9)))
        out.files.append((_ROUTER, "# routes for the audit export\n", end - timedelta(days=9)))
    if audit or "excluded-tests" in want:
        out.files.append(
            (
                _TEST_FILE,
                "def test_export_roundtrip():\n    assert True\n\n\n"
                "def test_export_large():\n    assert True\n",
                end - timedelta(days=20),
            )
        )
    if "impl-vs-spec" in want:
        at = shifted(2)
        tasks.append(
            example_task(
                "task-audit-impl",
                "Implement the audit export",
                at(days=2, hours=6, minutes=5),  # started at once: not starved
                task_type="impl",
                spec=_SPEC,
                status="completed",
                started_at=at(days=2, hours=6),
                finished_at=at(days=2),
                files_changed=[_SERVICE],
            )
        )
        label("review-audit", "impl-vs-spec", "task-audit-impl", at(days=2))
    if want & {"inconsistent", "no-decision"}:
        at = shifted(1)
        tasks.append(
            example_task(
                "task-audit-review",
                "Review the audit export",
                at(days=1, hours=4, minutes=5),
                task_type="review",
                status="completed",
                started_at=at(days=1, hours=4),
                finished_at=at(days=1),
                review_decision="pass",
                review_rationale="Looks complete.",
                commit=_COMMIT,
            )
        )
        label("review-audit", "inconsistent", "task-audit-review", at(days=1))
        if "no-decision" in want:  # judged: the first review that records a decision
            out.injections.append(("review-audit", "no-decision", "task_type:review", at(days=1)))
        out.test_results += [
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
    if "excluded-tests" in want:
        at = shifted(4)
        out.test_results += [
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
        label(
            "test-health",
            "excluded-tests",
            "api.tests.test_export_audit_log::test_export_large",
            at(days=4),
        )
    if want & {"coverage-drop", "low-coverage"}:
        at = shifted(1)
        # Five commits of main: about 82% line coverage, then 71% at the last one.
        for n, (days, base) in enumerate([(6, 820), (5, 823), (4, 818), (3, 821), (1, 760)]):
            sha = f"{n + 1:02d}" + _COMMIT[2:]
            for file, valid, hit in (("api/app/main.py", 1000, base), (_SERVICE, 120, 36)):
                out.coverage.append(
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
        label("test-health", "coverage-drop", "branch:main", at(days=1))
        label("test-health", "low-coverage", _SPEC, at(days=6))
    # backlog-hygiene
    if want & {"oversized", "no-acceptance"}:
        at = shifted(4)
        tasks.append(
            example_task(
                "task-epic-01",
                "Multi-tenant pipeline",
                at(days=4),
                description=_EPIC,
                task_type="impl",
                # not yet in the impl phase's queue, so no later impl work passes it (starved)
                phase="backlog",
            )
        )
        label("backlog-hygiene", "oversized", "task-epic-01", at(days=4))
        if "no-acceptance" in want:  # judged from the records: pending an hour, no criteria
            out.injections.append(("backlog-hygiene", "no-acceptance", "task-epic-01", at(days=4)))
    if "low-value" in want:
        at = shifted(12)
        tasks.append(
            example_task(
                "task-launch-01",
                "Launch the public dashboard",
                at(days=12, hours=2),  # never pending long (stale-queue)
                status="completed",
                started_at=at(days=12, hours=1),  # an hour's run: never stuck
                finished_at=at(days=12),
            )
        )
        tasks.append(
            example_task(
                "task-leftover-01",
                "Dashboard: animate the progress bars",
                at(days=20),
                priority="low",
                goal_id="task-launch-01",
            )
        )
        # untouched for 8 days when its goal completed
        label("backlog-hygiene", "low-value", "task-leftover-01", at(days=12))
    out.tasks = [TaskRecord.model_validate(t).row() for t in tasks]
    return out


def example_task(
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
