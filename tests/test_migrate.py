"""``reviewer migrate``: a store copied to SQLite or PostgreSQL without loss."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reviewer.cli import cli
from reviewer.engine import Engine
from reviewer.sim import simulate
from store import open_store
from store.base import Store
from store.sqlite import SQLiteStore
from store.timeutil import parse_ts
from store.transfer import copy_store, row_hash
from tests.pg import fresh_schema_url
from tests.support import make_config

NOW = "2026-03-11T18:00:00Z"
ODD_TASK = {
    "id": "odd-ü-🚀",
    "title": "Ünïcode 🚀, quotes ' \" and a tab\t",
    "description": None,
    "status": "pending",
    "priority": "low",
    "created_at": "2026-03-05T00:00:00Z",
    "attempts": 0,
    "labels": json.dumps(["a,b", "c"]),
}


@pytest.fixture(scope="module")
def source_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated week of pipeline history with a reviewed, approved and silenced state."""
    root = tmp_path_factory.mktemp("migrate-source")
    path = root / "source.db"
    store = SQLiteStore(path)
    try:
        simulate(store, workspace=root / "ws", seed=3, days=7, tasks_per_day=40)
        store.upsert_tasks([ODD_TASK])
        store.upsert_metrics(
            [{"task_id": "odd-ü-🚀", "status": "failed", "created_at": NOW, "cost_usd": 0.1 + 0.2}]
        )
        engine = Engine(make_config(), store, clock=lambda: parse_ts(NOW))
        result = engine.review(parse_ts(NOW))
        assert result.proposals, "the simulated week should give proposals"
        engine.approve(result.proposals[0]["id"], by="alice", reason="looks right")
        engine.reject(result.proposals[1]["id"], by="bob", reason="not now")
        engine.review(parse_ts(NOW) + timedelta(hours=1))
    finally:
        store.close()
    return path


@pytest.fixture
def source(source_file: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "a.db"
    shutil.copy(source_file, copy)
    return copy


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["migrate", *args])
    return result.exit_code, result.stdout, result.stderr


def table_rows(store: Store, table: str) -> list[tuple[Any, ...]]:
    """Every row of a table, as comparable tuples in a database-independent order
    (without the audit entry the migration itself adds to the target)."""
    where = " WHERE action <> 'store.migrated'" if table == "reviewer_audit" else ""
    rows = [tuple(r.values()) for r in store.query(f'SELECT * FROM "{table}"{where}')]
    return sorted(rows, key=lambda r: json.dumps(r, default=str))


BACKLOG_AND_STATE = (
    "tasks",
    "task_metrics",
    "test_results",
    "reviewer_runs",
    "reviewer_findings",
    "reviewer_proposals",
    "reviewer_audit",
)


def assert_same(src: Store, dst: Store) -> None:
    for table in BACKLOG_AND_STATE:
        a, b = table_rows(src, table), table_rows(dst, table)
        assert len(a) > 0, table
        assert a == b, table


def test_sqlite_to_sqlite(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "b.db"
    code, out, err = invoke(
        "--from", f"sqlite:///{source}", "--to", f"sqlite:///{target}", "--json"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["ok"] and summary["rows"] > 1000
    by_table = {t["table"]: t for t in summary["tables"]}
    assert set(BACKLOG_AND_STATE) <= set(by_table)
    assert all(t["source_checksum"] == t["target_checksum"] for t in by_table.values())
    src, dst = SQLiteStore(source), SQLiteStore(target)
    try:
        assert_same(src, dst)
        # The migration itself is in the target's audit log, after the copied entries.
        (last,) = dst.query(
            "SELECT actor, action, reason FROM reviewer_audit ORDER BY id DESC LIMIT 1"
        )
        assert last["action"] == "store.migrated" and str(source) in last["reason"]
    finally:
        src.close()
        dst.close()


@pytest.mark.postgres
def test_sqlite_to_postgresql(source: Path) -> None:
    with fresh_schema_url() as url:
        code, out, err = invoke("--from", f"sqlite:///{source}", "--to", url, "--batch", "300")
        assert code == 0, err
        assert "every count and checksum matches" in out
        src, dst = SQLiteStore(source), open_store(url)
        try:
            assert_same(src, dst)
            # Ids keep counting after the copied ones (the sequences were moved on).
            top = dst.query("SELECT MAX(id) AS m FROM reviewer_runs")[0]["m"]
            app_engine = Engine(make_config(), dst, clock=lambda: parse_ts(NOW))
            run = app_engine.review(parse_ts(NOW) + timedelta(hours=2))
            assert run.run_id == top + 1
            # The backlog reads the same: the next review on either store finds the same.
            again = Engine(make_config(), src, clock=lambda: parse_ts(NOW))
            at = parse_ts(NOW) + timedelta(hours=2)
            a = {f["fingerprint"] for f in again.review(at, dry_run=True).findings}
            b = {f["fingerprint"] for f in run.findings}
            assert a == b and a
        finally:
            src.close()
            dst.close()


@pytest.mark.postgres
def test_postgresql_to_sqlite_round_trip(source: Path, tmp_path: Path) -> None:
    back = tmp_path / "back.db"
    with fresh_schema_url() as url:
        assert invoke("--from", f"sqlite:///{source}", "--to", url)[0] == 0
        code, _, err = invoke("--from", url, "--to", f"sqlite:///{back}", "--batch", "64")
        assert code == 0, err
    src, dst = SQLiteStore(source), SQLiteStore(back)
    try:
        assert_same(src, dst)
    finally:
        src.close()
        dst.close()


def test_a_non_empty_target_is_refused_unless_replace(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "b.db"
    other = SQLiteStore(target)
    other.upsert_tasks([{**ODD_TASK, "id": "already-here", "labels": None}])
    other.close()
    code, _, err = invoke("--from", f"sqlite:///{source}", "--to", f"sqlite:///{target}")
    assert code == 1
    assert "the target is not empty: tasks (1 rows)" in err and "--replace" in err
    code, _, err = invoke(
        "--from", f"sqlite:///{source}", "--to", f"sqlite:///{target}", "--replace"
    )
    assert code == 0, err
    src, dst = SQLiteStore(source), SQLiteStore(target)
    try:
        assert dst.get_task("already-here") is None
        assert_same(src, dst)
    finally:
        src.close()
        dst.close()


def test_copies_in_batches_and_reports_progress(source: Path, tmp_path: Path) -> None:
    src, dst = SQLiteStore(source), SQLiteStore(tmp_path / "b.db")
    seen: list[tuple[str, int, int]] = []
    try:
        reports = copy_store(src, dst, batch=50, progress=lambda t, d, n: seen.append((t, d, n)))
        tasks = [(d, n) for t, d, n in seen if t == "tasks"]
        n = next(r.source_rows for r in reports if r.table == "tasks")
        assert tasks[0] == (0, n) and tasks[-1] == (n, n)
        # One step per batch of 50 (the last may be short).
        assert [d for d, _ in tasks[1:]] == [min(n, k) for k in range(50, n + 50, 50)]
    finally:
        src.close()
        dst.close()


def test_a_lost_row_is_a_mismatch(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from store import transfer

    real = transfer._SQLiteSide.load

    def lossy(self: Any, table: str, columns: Any, chunks: Iterator[list[Any]]) -> None:
        if table == "task_metrics":
            chunks = (chunk[1:] for chunk in chunks)  # one row lost per batch
        real(self, table, columns, chunks)

    monkeypatch.setattr(transfer._SQLiteSide, "load", lossy)
    code, out, _ = invoke("--from", f"sqlite:///{source}", "--to", f"sqlite:///{tmp_path / 'b.db'}")
    assert code == 1
    assert "MISMATCH" in out
    line = next(x for x in out.splitlines() if x.startswith("task_metrics "))
    assert line.split()[-1] == "False"


def test_checksum_sees_a_changed_value() -> None:
    row = ("t1", "Title", 1, 0.5, None)
    assert row_hash(row) == row_hash(("t1", "Title", 1.0, 0.5, None))  # 1 and 1.0 alike
    assert row_hash(row) != row_hash(("t1", "Title", 1, 0.5, ""))
    assert row_hash(row) != row_hash(("t1", "Title ", 1, 0.5, None))


def test_usage_errors_are_messages(source: Path, tmp_path: Path) -> None:
    code, _, err = invoke("--from", f"sqlite:///{tmp_path / 'nope.db'}", "--to", "sqlite:///x.db")
    assert code == 2 and "no such file" in err
    url = f"sqlite:///{source}"
    code, _, err = invoke("--from", url, "--to", url)
    assert code == 2 and "same store" in err


def test_streams_without_holding_a_table(source: Path, tmp_path: Path) -> None:
    # The source is read through a cursor in batches: a batch never exceeds its size.
    from store import transfer

    src = SQLiteStore(source)
    try:
        sizes = [len(c) for c in transfer._SQLiteSide(src).rows("tasks", ["id"], 37)]
        assert (
            max(sizes) == 37 and sum(sizes) == src.query("SELECT COUNT(*) AS n FROM tasks")[0]["n"]
        )
    finally:
        src.close()


def test_progress_bars_on_a_terminal(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys
    import types

    from reviewer.cli import migrate as migrate_cli

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    import sqlite3

    with sqlite3.connect(source) as db:  # the simulated history has coverage; empty it
        db.execute("DELETE FROM coverage")
    term = Terminal()
    monkeypatch.setattr(migrate_cli, "sys", types.SimpleNamespace(stderr=term, exit=sys.exit))
    code, _, err = invoke("--from", f"sqlite:///{source}", "--to", f"sqlite:///{tmp_path / 'b.db'}")
    assert code == 0, err
    shown = term.getvalue()
    src = SQLiteStore(source)
    n = src.query("SELECT COUNT(*) AS n FROM tasks")[0]["n"]
    src.close()
    assert "tasks" in shown and f"{n}/{n}" in shown
    assert "coverage" not in shown  # an empty table gets no bar
