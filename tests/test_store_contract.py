"""One suite of store behaviour, run against every SQL store adapter.

The PostgreSQL runs need a server: ``REVIEWER_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/test``). Each test gets a schema of its
own, dropped afterwards. Without a server they are skipped, except under CI
(``CI`` set), where they fail: CI must run them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from reviewer.config import config_from_dict
from reviewer.engine import Engine
from store import SCHEMA_VERSION, DaemonLockedError, ProposalState, Store, StoreError, open_store
from store.base import SupportsReplicas
from store.sqlite import SQLiteStore
from store.timeutil import parse_ts
from tests.pg import PG_URL, fresh_schema_url, require_postgres
from tests.support import metric_rows, task_rows

NOW = parse_ts("2026-03-10T12:00:00Z")
_require_postgres = require_postgres


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A store URL naming a fresh, empty schema of the test database."""
    with fresh_schema_url() as url:
        yield url


STORES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=STORES)
def kind(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    value: str = request.getfixturevalue("pg_schema_url")
    return value


@pytest.fixture
def opener(url: str) -> Iterator[Callable[[], Store]]:
    """Opens stores on one URL and closes them all at the end."""
    opened: list[Store] = []

    def open_one() -> Store:
        s = open_store(url)
        opened.append(s)
        return s

    yield open_one
    for s in opened:
        s.close()


@pytest.fixture
def store(opener: Callable[[], Store]) -> Store:
    return opener()


def task(tid: str, **fields: object) -> dict[str, object]:
    return {"id": tid, "title": f"task {tid}", "created_at": "2026-03-01T00:00:00Z", **fields}


# -- schema ----------------------------------------------------------------------
def test_open_store_picks_the_adapter(store: Store, kind: str) -> None:
    expected = "SQLiteStore" if kind == "sqlite" else "PostgresStore"
    assert type(store).__name__ == expected


def test_migrations_are_idempotent_and_record_the_version(
    store: Store, opener: Callable[[], Store]
) -> None:
    store.upsert_tasks(task_rows([task("a")]))
    again = opener()  # runs the migrations a second time
    assert again.query("SELECT value FROM reviewer_meta WHERE key = 'schema_version'") == [
        {"value": str(SCHEMA_VERSION)}
    ]
    assert again.get_task("a") is not None


def test_two_processes_starting_at_once_both_migrate_cleanly(
    opener: Callable[[], Store], kind: str
) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            opener()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = opener().query("SELECT value FROM reviewer_meta WHERE key = 'schema_version'")
    assert rows == [{"value": str(SCHEMA_VERSION)}]


def test_numeric_columns_come_back_as_int_and_float(store: Store) -> None:
    store.upsert_metrics(
        metric_rows(
            [
                {
                    "task_id": "a",
                    "duration_seconds": 2,
                    "status": "completed",
                    "created_at": "2026-03-01T00:00:00Z",
                    "tokens_in": 10,
                    "cost_usd": 0.5,
                },
            ]
        )
    )
    (row,) = store.query(
        "SELECT duration_seconds, tokens_in, cost_usd, SUM(tokens_in) AS total,"
        " AVG(tokens_in) AS mean FROM task_metrics"
        " GROUP BY duration_seconds, tokens_in, cost_usd"
    )
    assert row == {
        "duration_seconds": 2.0,
        "tokens_in": 10,
        "cost_usd": 0.5,
        "total": 10,
        "mean": 10.0,
    }
    assert type(row["duration_seconds"]) is float
    assert type(row["tokens_in"]) is int and type(row["total"]) is int
    assert type(row["mean"]) is float and row["mean"] == 10.0


# -- backlog writes ----------------------------------------------------------------
def test_upsert_by_id_updates_and_keeps_one_row(store: Store) -> None:
    assert store.upsert_tasks(task_rows([task("a", priority="low")])) == 1
    assert store.upsert_tasks(task_rows([task("a", priority="high", labels=["x"])])) == 1
    rows = store.query("SELECT id, priority, labels FROM tasks")
    assert rows == [{"id": "a", "priority": "high", "labels": '["x"]'}]


def test_upsert_stores_lists_and_objects_as_json_text(store: Store) -> None:
    row = task_rows([task("a")])[0]
    store.upsert_tasks([{**row, "labels": ["x", "y"], "extra": {"k": 1}}])
    got = store.get_task("a")
    assert got is not None
    assert (got["labels"], got["extra"]) == ('["x", "y"]', '{"k": 1}')


def test_upsert_the_same_key_twice_in_one_batch_keeps_the_last(store: Store) -> None:
    n = store.upsert_tasks(task_rows([task("a", title="first"), task("a", title="second")]))
    assert n == 2
    assert store.query("SELECT title FROM tasks") == [{"title": "second"}]


def test_upsert_metrics_and_test_results_by_composite_key(store: Store) -> None:
    metric = {
        "task_id": "a",
        "duration_seconds": 1.0,
        "status": "completed",
        "created_at": "2026-03-01T00:00:00Z",
    }
    store.upsert_metrics(metric_rows([metric, {**metric, "created_at": "2026-03-02T00:00:00Z"}]))
    store.upsert_metrics(metric_rows([{**metric, "duration_seconds": 9.5}]))
    assert store.query(
        "SELECT created_at, duration_seconds FROM task_metrics ORDER BY created_at"
    ) == [
        {"created_at": "2026-03-01T00:00:00Z", "duration_seconds": 9.5},
        {"created_at": "2026-03-02T00:00:00Z", "duration_seconds": 1.0},
    ]
    result = {
        "run_id": "r1",
        "test_id": "pkg.T::t",
        "commit_sha": "abc",
        "outcome": "passed",
        "ran_at": "2026-03-01T00:00:00Z",
    }
    store.upsert_test_results([result])
    store.upsert_test_results([{**result, "outcome": "failed"}])
    assert store.query("SELECT outcome FROM test_results") == [{"outcome": "failed"}]


@pytest.mark.slow
def test_upsert_streams_more_than_one_batch(store: Store) -> None:
    tasks = (task(f"t{i:05d}") for i in range(25_000))
    assert store.upsert_tasks(task_rows(tasks)) == 25_000
    assert store.query("SELECT COUNT(*) AS n FROM tasks") == [{"n": 25_000}]


def test_insert_task_once_inserts_exactly_once(store: Store) -> None:
    row = task_rows([task("reviewer-1", source="reviewer")])[0]
    assert store.insert_task_once(row) is True
    assert store.insert_task_once({**row, "title": "changed"}) is False
    assert store.query("SELECT id, title FROM tasks") == [
        {"id": "reviewer-1", "title": "task reviewer-1"}
    ]


def test_touch_task_labels_adds_labels_and_remembers_the_touch(store: Store) -> None:
    store.upsert_tasks(task_rows([task("a", labels=["x"], updated_at="2026-03-02T00:00:00Z")]))
    store.touch_task_labels("a", ["reviewer:stale-queue"], "2026-03-09T00:00:00Z")
    store.touch_task_labels("a", ["reviewer:stale-queue"], "2026-03-09T01:00:00Z")  # no-op
    got = store.get_task("a")
    assert got is not None
    assert got["labels"] == '["x", "reviewer:stale-queue"]'
    assert got["updated_at"] == "2026-03-09T00:00:00Z"
    assert store.query("SELECT * FROM reviewer_task_touches") == [
        {
            "task_id": "a",
            "touched_at": "2026-03-09T00:00:00Z",
            "previous_updated_at": "2026-03-02T00:00:00Z",
        }
    ]
    store.touch_task_labels("missing", ["x"], "2026-03-09T00:00:00Z")  # silently nothing


def test_set_task_priority_changes_it_and_remembers_the_touch(store: Store) -> None:
    store.upsert_tasks(task_rows([task("a", priority="low", updated_at="2026-03-02T00:00:00Z")]))
    assert store.set_task_priority("a", "high", "2026-03-09T00:00:00Z") == "low"
    got = store.get_task("a")
    assert got is not None and got["priority"] == "high"
    assert got["updated_at"] == "2026-03-09T00:00:00Z"
    assert store.query("SELECT * FROM reviewer_task_touches") == [
        {
            "task_id": "a",
            "touched_at": "2026-03-09T00:00:00Z",
            "previous_updated_at": "2026-03-02T00:00:00Z",
        }
    ]
    assert store.set_task_priority("a", "high", "2026-03-09T01:00:00Z") == "high"  # no change
    assert store.set_task_priority("missing", "high", "2026-03-09T00:00:00Z") is None
    assert store.query("SELECT incident_id FROM reviewer_findings") == []  # the column exists


# -- transactions --------------------------------------------------------------------
def test_transaction_rolls_back_on_exception(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.upsert_tasks(task_rows([task("a")]))
        store.execute("DELETE FROM reviewer_meta WHERE key = 'nothing'")
        raise RuntimeError("boom")
    assert store.get_task("a") is None


def test_nested_transaction_joins_the_outer_one(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        with store.transaction():
            store.insert_task_once(task_rows([task("a")])[0])
        # The inner block is over but nothing is committed until the outer one is.
        assert store.get_task("a") is not None
        raise RuntimeError("boom")
    assert store.get_task("a") is None
    with store.transaction(), store.transaction():
        store.insert_task_once(task_rows([task("b")])[0])
    assert store.get_task("b") is not None


def test_write_transactions_of_two_connections_queue_up(opener: Callable[[], Store]) -> None:
    first, second = opener(), opener()
    order: list[str] = []
    inside = threading.Event()

    def other() -> None:
        inside.wait()
        with second.transaction():
            order.append("second")

    thread = threading.Thread(target=other)
    thread.start()
    with first.transaction():
        inside.set()
        thread.join(0.5)  # the other writer must be waiting for our lock
        order.append("first")
    thread.join()
    assert order == ["first", "second"]


def test_threads_sharing_one_store_each_get_their_own_connection(store: Store) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(20):
                with store.transaction():
                    store.insert_task_once(task_rows([task(f"t{i}-{j}")])[0])
                    assert store.get_task(f"t{i}-{j}") is not None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.query("SELECT COUNT(*) AS n FROM tasks") == [{"n": 120}]


@pytest.mark.postgres
def test_postgres_store_reconnects_after_its_connection_dies(pg_schema_url: str) -> None:
    import psycopg

    from store.postgres import PostgresStore

    with PostgresStore(pg_schema_url) as store:
        pid = store.query("SELECT pg_backend_pid() AS pid")[0]["pid"]
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreError):
            store.query("SELECT 1 AS one")  # the statement that finds it dead fails
        assert store.query("SELECT 1 AS one") == [{"one": 1}]


# -- reading as of now -----------------------------------------------------------------
def test_view_rebuilds_each_tasks_state_as_of_now(store: Store) -> None:
    store.upsert_tasks(
        task_rows(
            [
                task("p", status="pending"),
                task("r", status="running", started_at="2026-03-05T00:00:00Z"),
                task(
                    "c",
                    status="completed",
                    started_at="2026-03-05T00:00:00Z",
                    finished_at="2026-03-08T00:00:00Z",
                ),
                task("future", created_at="2026-03-20T00:00:00Z"),
            ]
        )
    )

    def states(at: str) -> dict[str, str]:
        return store.view(parse_ts(at)).task_states(["p", "r", "c", "future"])

    assert states("2026-03-02T00:00:00Z") == {"p": "pending", "r": "pending", "c": "pending"}
    assert states("2026-03-06T00:00:00Z") == {"p": "pending", "r": "running", "c": "running"}
    assert states("2026-03-09T00:00:00Z") == {"p": "pending", "r": "running", "c": "completed"}


def test_last_activity_ignores_the_reviewers_own_touch(store: Store) -> None:
    store.upsert_tasks(
        task_rows([task("a", updated_at="2026-03-02T00:00:00Z"), task("b")]),
    )
    store.touch_task_labels("a", ["reviewer:stale-queue"], "2026-03-09T00:00:00Z")
    rows = store.view(NOW).idle_pending_tasks(timedelta(days=5))
    assert [(r["id"], r["last_activity"]) for r in rows] == [
        ("b", "2026-03-01T00:00:00Z"),
        ("a", "2026-03-02T00:00:00Z"),
    ]


def test_view_sql_with_its_own_cte_aliases_and_literals(store: Store) -> None:
    store.upsert_tasks(task_rows([task("a", title="50% done: ok")]))
    view = store.view(NOW)
    rows = view.rows(
        """WITH named AS (SELECT id FROM {tasks} WHERE title LIKE '50%' AND title <> ':x')
           SELECT t.id, n.id AS again, {latest} AS latest, {epoch} AS e
           FROM {tasks} t JOIN named n ON n.id = t.id WHERE t.title LIKE :pattern""".replace(
            "{latest}", view.dialect.greatest("t.created_at", ":now")
        ).replace("{epoch}", view.epoch("t.created_at")),
        {"pattern": "%done%"},
    )
    assert rows == [{"id": "a", "again": "a", "latest": "2026-03-10T12:00:00Z", "e": 1772323200.0}]
    assert (
        view.scalar(f"SELECT {view.dialect.greatest('created_at', 'NULL')} FROM {{tasks}}") is None
    )


# -- reviewer state ----------------------------------------------------------------------
def test_query_and_execute_with_named_params_and_returning(store: Store) -> None:
    rows = store.query(
        "INSERT INTO reviewer_runs (started_at, now, status, trigger)"
        " VALUES (:s, :n, 'running', :t) RETURNING id, status",
        {"s": "2026-03-10T12:00:00Z", "n": "2026-03-10T12:00:00Z", "t": "once"},
    )
    assert rows == [{"id": 1, "status": "running"}]
    store.execute("UPDATE reviewer_runs SET status = :s WHERE id = :id", {"s": "ok", "id": 1})
    assert store.query("SELECT status FROM reviewer_runs WHERE id = :id", {"id": 1}) == [
        {"status": "ok"}
    ]
    assert store.query("UPDATE reviewer_runs SET findings = 3") == []


# -- one daemon per store ------------------------------------------------------------------
def test_daemon_lock_excludes_a_second_holder_until_closed(
    store: Store, opener: Callable[[], Store]
) -> None:
    if isinstance(store, SupportsReplicas):
        # PostgreSQL: daemons are replicas, each cycle has one leader (tests/test_replicas.py).
        store.acquire_daemon_lock()
        opener().acquire_daemon_lock()
        return
    store.acquire_daemon_lock()
    store.acquire_daemon_lock()  # holding it already is fine
    other = opener()
    with pytest.raises(DaemonLockedError, match="already running"):
        other.acquire_daemon_lock()
    store.close()
    other.acquire_daemon_lock()
    other.release_daemon_lock()


# -- the engine on top -----------------------------------------------------------------------
def test_one_engine_cycle_files_exactly_one_backlog_task(store: Store) -> None:
    store.upsert_tasks(task_rows([task("stale", priority="high")]))
    engine = Engine(config_from_dict({}), store, clock=lambda: NOW)
    result = engine.review(NOW)
    assert result.status == "ok", result.errors
    created = [p for p in result.proposals if p["change"] == "created"]
    assert [(p["rule"], p["state"]) for p in created] == [("stale-queue", "pending")]
    proposal = engine.approve(created[0]["id"], by="alice")
    again = engine.approve(created[0]["id"], by="alice")
    assert proposal.state == again.state == ProposalState.scheduled
    rows = store.query("SELECT id, source FROM tasks WHERE source = 'reviewer'")
    assert rows == [{"id": "reviewer-1", "source": "reviewer"}]
    subject = store.get_task("stale")
    assert subject is not None and "reviewer:stale-queue" in subject["labels"]
    # The label the reviewer added is not activity: the next cycle still sees it stale.
    later = engine.review(NOW + timedelta(hours=1))
    assert [f["subject"] for f in later.findings] == ["stale"]


def test_outcomes_breaker_and_ledger_sql_run_on_every_store(store: Store) -> None:
    """The outcome, breaker and ledger queries (window functions, epoch maths, upserts)."""
    from reviewer.ledger import build_ledger

    store.upsert_tasks(task_rows([task("a", priority="high"), task("b", priority="high")]))
    cfg = config_from_dict(
        {"reviewer": {"resolve_after_cycles": 1, "outcome_cycles": 1, "outcome_clear_for": "1d"}}
    )
    engine = Engine(cfg, store, clock=lambda: NOW)
    created = [p for p in engine.review(NOW).proposals if p["change"] == "created"]
    fix, drop = sorted(created, key=lambda p: p["subject"])
    engine.approve(fix["id"], by="alice")
    engine.reject(drop["id"], by="bob", reason="kept on purpose")
    done = "2026-03-10T15:00:00Z"
    store.execute(
        "UPDATE tasks SET status = 'completed', finished_at = :at WHERE id = :id",
        {"at": done, "id": f"reviewer-{fix['id']}"},
    )
    store.upsert_tasks(task_rows([task("a", priority="high", updated_at=done)]))
    store.upsert_tasks(task_rows([task("b", priority="high", updated_at=done)]))
    engine.review(NOW + timedelta(hours=4))
    judged = engine.review(NOW + timedelta(days=1, hours=4))
    assert [o["outcome"] for o in judged.outcomes] == ["fixed"]
    with store.transaction():
        engine.state.trip_breaker(
            "stale-queue", at="2026-03-11T00:00:00Z", rejections=1, reason="r"
        )
    assert set(engine.state.tripped_breakers()) == {"stale-queue"}
    assert engine.state.rejections_since("2026-03-01T00:00:00Z") == {"stale-queue": 1}
    report = build_ledger(cfg, store, NOW + timedelta(days=2))
    (entry,) = [r for r in report["rules"] if r["rule"] == "stale-queue"]
    assert (entry["fixed"], entry["approvals"], entry["rejections"]) == (1, 1, 1)
    assert entry["median_time_to_fix_seconds"] == 3 * 3600  # proposed 12:00, done 15:00
    assert entry["rejection_reasons"] == [{"reason": "kept on purpose", "n": 1}]
    assert entry["breaker"] is not None
    with store.transaction():
        engine.state.reset_breaker(
            "stale-queue", by="carol", at="2026-03-11T01:00:00Z", reason=None
        )
    # Only rejections after the reset count towards the next trip.
    assert engine.state.tripped_breakers() == {}
    assert engine.state.rejections_since("2026-03-01T00:00:00Z") == {}


def test_sqlite_store_url_round_trip(tmp_path: Path) -> None:
    s = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert isinstance(s, SQLiteStore)
    finally:
        s.close()


def test_timestamps_written_directly_are_brought_to_the_stored_form(store: Store) -> None:
    """A pipeline writing the tables itself may use any ISO 8601 form or Unix seconds."""
    store.execute(
        "INSERT INTO tasks (id, title, status, priority, attempts, created_at, updated_at,"
        " started_at, finished_at) VALUES"
        " ('a', 'A', 'pending', 'normal', 0, '2026-03-01 10:00:00', '2026-03-01T12:00:00+02:00',"
        " NULL, '2026-03-01T10:00:00.750Z'),"
        " ('b', 'B', 'pending', 'normal', 0, '2026-03-01T10:00:00Z', 'not a time', NULL, NULL)"
    )
    store.execute("UPDATE tasks SET started_at = '2026-03-02T01:02:03-01:00' WHERE id = 'a'")
    store.execute(
        "INSERT INTO task_metrics (task_id, status, created_at, duration_seconds)"
        " VALUES ('a', 'completed', '1772359200', 1.0)"
    )
    rows = {r["id"]: r for r in store.query("SELECT * FROM tasks ORDER BY id")}
    assert rows["a"]["created_at"] == "2026-03-01T10:00:00Z"
    assert rows["a"]["updated_at"] == "2026-03-01T10:00:00Z"
    assert rows["a"]["finished_at"] == "2026-03-01T10:00:00Z"
    assert rows["a"]["started_at"] == "2026-03-02T02:02:03Z"
    assert rows["b"]["created_at"] == "2026-03-01T10:00:00Z"
    assert rows["b"]["updated_at"] == "not a time"  # kept as written, never lost
    (metric,) = store.query("SELECT created_at FROM task_metrics")
    assert metric["created_at"] == "2026-03-01T10:00:00Z"


def test_count_after_counts_records_dated_later_in_every_table(store: Store) -> None:
    from store import ReviewerState

    store.upsert_tasks(
        task_rows(
            [
                task("old"),
                task("late", updated_at="2099-01-01T00:00:00Z"),
                task("born-late", created_at="2099-02-01T00:00:00Z"),
            ]
        )
    )
    store.upsert_test_results(
        [
            {
                "run_id": "r",
                "test_id": "c::t",
                "classname": "c",
                "name": "t",
                "outcome": "passed",
                "commit_sha": "abc",
                "ran_at": "2099-01-01T00:00:00Z",
            }
        ]
    )
    state = ReviewerState(store)
    assert state.count_after("2026-03-10T00:00:00Z") == 3
    assert state.count_after("2099-01-15T00:00:00Z") == 1
    assert state.count_after("2100-01-01T00:00:00Z") == 0


@pytest.mark.postgres
def test_postgres_open_takes_no_write_lock_when_no_migration_is_due(pg_schema_url: str) -> None:
    """An up-to-date store opens while another session holds its write lock.

    The second open runs with lock_timeout=1s: had it asked for the write lock,
    it would fail with a lock timeout instead of opening.
    """
    impatient = pg_schema_url.replace("options=", "options=-clock_timeout%3D1000%20")
    first = open_store(pg_schema_url)
    try:
        with first.transaction():  # holds the write lock until the block ends
            second = open_store(impatient)
            try:
                assert second.schema_version() == SCHEMA_VERSION
                # A store that still needs a migration does wait for the lock (and times out).
                second.execute("UPDATE reviewer_meta SET value = '1' WHERE key = 'schema_version'")
            finally:
                second.close()
            with pytest.raises(StoreError):
                open_store(impatient)
    finally:
        first.close()


def test_audit_log_filters_in_sql(store: Store) -> None:
    from store.state import ReviewerState

    state = ReviewerState(store)
    with store.transaction():
        for i, (actor, action, rule) in enumerate(
            [
                ("reviewer", "proposal.created", "stale-queue"),
                ("desk", "proposal.approved", "stale-queue"),
                ("dana via ops", "proposal.rejected", "flaky-tests"),
                ("desk", "silence.added", "flaky-tests"),
                ("ops_x", "proposalish", "flaky-tests"),  # neither proposal.* nor ops
            ]
        ):
            state.audit(f"2026-03-0{i + 1}T00:00:00Z", actor, action, rule=rule)

    def actions(**filters: object) -> list[str]:
        return [r["action"] for r in state.audit_log(**filters)]  # type: ignore[arg-type]

    assert actions(action="proposal") == [
        "proposal.rejected",
        "proposal.approved",
        "proposal.created",
    ]
    assert actions(action="proposal.approved") == ["proposal.approved"]
    assert actions(actor="ops") == ["proposal.rejected"]
    assert actions(actor="o_s") == []  # LIKE wildcards are matched literally
    assert actions(actor="desk", rule="flaky-tests") == ["silence.added"]
    assert actions(since="2026-03-04T00:00:00Z") == ["proposalish", "silence.added"]
    assert actions(limit=2) == ["proposalish", "silence.added"]
