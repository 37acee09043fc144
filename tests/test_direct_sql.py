"""Direct SQL writers (issue 9): whatever a pipeline writes into one column of its
tables, no review cycle fails. Rows whose timestamp or number does not parse are
skipped and counted on the run; the SQLite trigger refuses negative Unix seconds."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reviewer.engine import Engine
from store import METRIC_COLUMNS, TASK_COLUMNS, TEST_RESULT_COLUMNS, Store, StoreError
from store.sqlite import SQLiteStore
from store.timeutil import parse_ts
from tests.support import make_config, make_store

EXAMPLES = int(os.environ.get("REVIEWER_FUZZ_EXAMPLES", "25"))
NOW = parse_ts("2026-03-10T00:00:00Z")
TABLES = {
    "tasks": TASK_COLUMNS,
    "task_metrics": METRIC_COLUMNS,
    "test_results": TEST_RESULT_COLUMNS,
}

JUNK = st.one_of(
    st.sampled_from(
        [
            "-5",
            "x",
            "",
            " ",
            "1e999",
            "-1e999",
            "NaN",
            "2026-13-45T99:99:99Z",
            "0999-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-03-01t12:00:00z",
            "1772366400000",
            "[",
            "{}",
            "null",
            '[1, {"a": 2}]',
            "2026-03-01",
            "Sun, 01 Mar 2026 12:00:00 +0100",
        ]
    ),
    st.text(max_size=30),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=8),
    st.none(),
)


def _records() -> dict[str, list[dict[str, Any]]]:
    tasks = [
        {
            "id": f"t{i}",
            "title": f"task {i}",
            "priority": p,
            "status": s,
            "task_type": "impl",
            "phase": "build",
            "created_at": "2026-03-01T00:00:00Z",
            "labels": ["a"],
            "depends_on": ["t0"] if i else [],
            "attempts": i,
            **({"started_at": "2026-03-02T00:00:00Z"} if s != "pending" else {}),
            **({"finished_at": "2026-03-03T00:00:00Z"} if s in ("completed", "failed") else {}),
        }
        for i, (p, s) in enumerate(
            [("high", "pending"), ("normal", "running"), ("low", "completed"), ("high", "failed")]
        )
    ]
    metrics = [
        {
            "task_id": f"t{i % 4}",
            "task_type": "impl",
            "model": "m",
            "executor": "e",
            "duration_seconds": 10.0 + i,
            "status": "completed" if i % 3 else "failed",
            "created_at": f"2026-03-0{1 + i % 8}T0{i % 10}:00:00Z",
            "tokens_in": 100 * i,
            "tokens_out": 10 * i,
            "cost_usd": 0.01 * i,
            "api_calls": i,
        }
        for i in range(12)
    ]
    results = [
        {
            "run_id": f"r{i}",
            "test_id": f"c::t{j}",
            "commit_sha": f"c{i}",
            "branch": "main",
            "outcome": "failed" if (i + j) % 3 == 0 else "passed",
            "duration_seconds": 1.0,
            "ran_at": f"2026-03-0{1 + i}T00:00:00Z",
        }
        for i in range(6)
        for j in range(3)
    ]
    return {"tasks": tasks, "metrics": metrics, "test_results": results}


def _engine(store: Store) -> Engine:
    return Engine(make_config({}), store, clock=lambda: NOW)


def _write_junk(store: Store, table: str, column: str, value: Any) -> bool:
    """Set ``column`` of one row to ``value`` by direct SQL; False when the database refused."""
    try:
        with store.transaction():
            store.execute(
                f"UPDATE {table} SET {column} = :v WHERE rowid = (SELECT MIN(rowid) FROM {table})"
                if isinstance(store, SQLiteStore)
                else f"UPDATE {table} SET {column} = :v",
                {"v": value},
            )
    except (sqlite3.Error, StoreError, ValueError, OverflowError, TypeError):
        # A refused write (NOT NULL, a negative Unix time, a type PostgreSQL will not take)
        # is the writer's error message, not a review's.
        return False
    except Exception as exc:  # psycopg's own errors on PostgreSQL
        if type(exc).__module__.startswith("psycopg"):
            return False
        raise
    return True


def _cycle_survives(store: Store) -> None:
    result = _engine(store).review(NOW)
    assert result.status == "ok", result.errors
    assert not result.errors, result.errors


@pytest.fixture
def sqlite_store() -> Iterator[Store]:
    s = make_store(**_records())
    yield s
    s.close()


COLUMNS = [(t, c) for t, cols in TABLES.items() for c in cols]


@settings(
    max_examples=EXAMPLES * 2,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(where=st.sampled_from(COLUMNS), value=JUNK)
def test_junk_in_any_column_never_fails_a_cycle_sqlite(where: tuple[str, str], value: Any) -> None:
    store = make_store(**_records())
    try:
        _write_junk(store, *where, value)
        _cycle_survives(store)
    finally:
        store.close()


@pytest.mark.postgres
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(where=st.sampled_from(COLUMNS), value=JUNK)
def test_junk_in_any_column_never_fails_a_cycle_postgres(
    where: tuple[str, str], value: Any
) -> None:
    from tests.pg import fresh_schema_url, require_postgres

    require_postgres()
    with fresh_schema_url() as url:
        store = make_store(url=url, **_records())
        try:
            _write_junk(store, *where, value)
            _cycle_survives(store)
        finally:
            store.close()


def test_unparseable_rows_are_skipped_and_counted_on_the_run() -> None:
    store = make_store(**_records())
    with store.transaction():
        store.execute("UPDATE tasks SET created_at = 'yesterday' WHERE id = 't0'")
        store.execute("UPDATE task_metrics SET cost_usd = 'x' WHERE rowid = 1")
        store.execute("UPDATE test_results SET ran_at = 'soon' WHERE rowid = 1")
    result = _engine(store).review(NOW)
    assert result.status == "ok", result.errors
    assert result.skipped_records == 3
    assert any("skipped 3 pipeline record(s)" in n for n in result.notes)
    (run,) = store.query("SELECT skipped_records FROM reviewer_runs")
    assert run["skipped_records"] == 3
    store.close()


def test_the_sqlite_trigger_reads_lowercase_and_refuses_negative_unix_seconds() -> None:
    store = SQLiteStore(":memory:")
    with store.transaction():
        store.execute(
            "INSERT INTO tasks (id, title, created_at, updated_at) VALUES ('a', 't', :c, :u)",
            {"c": "2026-03-01t12:00:00z", "u": "2026-03-01T13:00:00z"},
        )
    assert store.query("SELECT created_at, updated_at FROM tasks") == [
        {"created_at": "2026-03-01T12:00:00Z", "updated_at": "2026-03-01T13:00:00Z"}
    ]
    for sql in (
        "INSERT INTO tasks (id, title, created_at) VALUES ('n', 't', '-5')",
        "UPDATE tasks SET finished_at = '-1.5' WHERE id = 'a'",
        "INSERT INTO task_metrics (task_id, status, created_at) VALUES ('n', 'failed', '-5')",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="negative Unix seconds"):
            store.execute(sql)
    store.close()


@pytest.mark.postgres
def test_a_postgres_dry_run_takes_no_write_lock() -> None:
    """Another process holds the store's write lock: a dry run still completes."""
    import threading

    from tests.pg import fresh_schema_url

    with fresh_schema_url() as url:
        store = make_store(url=url, **_records())
        other = make_store(url=url)
        held, release = threading.Event(), threading.Event()

        def writer() -> None:
            with other.transaction():  # holds the advisory write lock until released
                held.set()
                release.wait(30)

        t = threading.Thread(target=writer)
        t.start()
        try:
            assert held.wait(10)
            done: list[Any] = []
            reviewer = threading.Thread(
                target=lambda: done.append(_engine(store).review(NOW, dry_run=True))
            )
            reviewer.start()
            reviewer.join(20)
            assert done, "the dry run waited for the write lock"
            assert done[0].status == "ok" and done[0].findings
            assert store.query("SELECT COUNT(*) AS n FROM reviewer_runs") == [{"n": 0}]
        finally:
            release.set()
            t.join()
            other.close()
            store.close()
