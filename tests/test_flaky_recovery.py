"""flaky-tests through the engine: a steady flake stays one open finding.

A 5%-flaky test passes 10 in a row 60% of the time; when a pass streak of
that length cleared it, the finding went open -> resolved -> regressed over and
over and the team was told twice and then not at all. Recovery now needs a
streak that is improbable for the test's own failure rate.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

import rules
from reviewer.engine import Engine
from store.sqlite import SQLiteStore
from store.timeutil import fmt_ts, parse_ts
from tests.support import make_config
from tests.support import test_result_rows as result_rows

T0 = parse_ts("2026-03-01T00:00:00Z")
DAYS = 45


class Clock:
    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _ci(store: SQLiteStore, fail_rate: float, seed: int) -> None:
    """Hourly CI: a new commit every 6 runs, one flaky test and one healthy one."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(DAYS * 24):
        at = fmt_ts(T0 + timedelta(hours=i))
        commit = f"c{i // 6:04d}"
        failed = bool(rng.random() < fail_rate)
        rows.append({
            "run_id": f"r{i}", "test_id": "net::test_retry", "commit_sha": commit,
            "outcome": "failed" if failed else "passed", "ran_at": at,
            "message": "ConnectionResetError" if failed else None,
        })  # fmt: skip
        rows.append({
            "run_id": f"r{i}", "test_id": "core::test_add", "commit_sha": commit,
            "outcome": "passed", "ran_at": at,
        })  # fmt: skip
    store.upsert_test_results(result_rows(rows))


def _engine(store: SQLiteStore) -> tuple[Engine, Clock]:
    only = {r: {"enabled": False} for r in rules.REGISTRY if r != "flaky-tests"}
    clock = Clock(T0)
    return Engine(make_config({"rules": only}), store, clock=clock), clock


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_a_steady_5_percent_flake_stays_open_and_never_regresses(
    store: SQLiteStore, seed: int
) -> None:
    _ci(store, 0.05, seed)
    engine, clock = _engine(store)
    opened_at = None
    for step in range(3 * 8, DAYS * 8):  # every 3 hours from day 3
        clock.at = T0 + timedelta(hours=3 * step)
        engine.review(clock.at)
        row = store.query(
            "SELECT state, regressions FROM reviewer_findings WHERE subject = 'net::test_retry'"
        )
        if row and opened_at is None:
            opened_at = clock.at
        if opened_at is not None:
            assert row and row[0]["state"] == "open", f"cleared at {fmt_ts(clock.at)}"
            assert row[0]["regressions"] == 0
    assert opened_at is not None, "a 5%-flaky test failing and passing on one commit is found"
    assert store.query("SELECT 1 FROM reviewer_findings WHERE subject = 'core::test_add'") == []
