"""Hostile and careless input (issue 9): nothing a pipeline or an operator sends
crashes the reviewer, loses the good records, or runs a command."""

from __future__ import annotations

import json
import shlex
import sqlite3
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from reviewer.cli import cli
from store.sqlite import SQLiteStore
from tests.support import make_store

BIG = 2**63 - 1


def _metric(i: int, **over: object) -> dict[str, object]:
    rec: dict[str, object] = {
        "task_id": f"t{i}",
        "task_type": "impl",
        "model": "m",
        "executor": "e",
        "duration_seconds": 10.0,
        "status": "completed",
        "created_at": f"2026-03-01T1{i % 10}:00:00Z",
    }
    rec.update(over)
    return rec


def _config(tmp_path: Path, store: Path, extra: str = "") -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[reviewer]\nstore = "sqlite:///{store}"\n{extra}')
    return cfg


# -- 1. aggregates cannot overflow -----------------------------------------------------
def test_sum_of_max_int_tokens_does_not_break_metrics_or_usage_spikes(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    make_store(path=str(db), metrics=[_metric(i) for i in range(3)]).close()
    # Records are capped at ingest (tokens <= 1e12), so the 64-bit maxima come by direct SQL.
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE task_metrics SET tokens_in = ?, tokens_out = ?, api_calls = ?", (BIG,) * 3
        )
    conn.close()
    cfg = _config(tmp_path, db)
    r = CliRunner().invoke(cli, ["--config", str(cfg), "metrics", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert "SELECT" not in r.output
    assert data
    r = CliRunner().invoke(
        cli,
        ["--config", str(cfg), "review", "--once", "--dry-run", "--now", "2026-03-02T00:00:00Z"],
    )
    assert r.exit_code == 0, r.output
    assert "failed" not in r.output.lower() or "rules failed: 0" in r.output.lower()


# -- 2. one bad record never costs the good ones ---------------------------------------
BAD_LINES = [
    ('"attempts": 100000000000000000000', "attempts"),
    ('"created_at": "9999-12-31T23:59:59-05:00"', "created_at"),
    ('"created_at": "0999-01-01T00:00:00Z"', "created_at"),
    ('"attempts": -1', "attempts"),
    ('"title": "nul \\u0000 byte"', "title"),
]


@pytest.mark.parametrize(("fragment", "field"), BAD_LINES)
def test_a_bad_task_is_named_and_the_good_ones_kept(
    tmp_path: Path, fragment: str, field: str
) -> None:
    f = tmp_path / "tasks.jsonl"
    f.write_text(
        '{"id": "good1", "title": "a", "created_at": "2026-03-01T00:00:00Z"}\n'
        '{"id": "bad", "title": "b", ' + fragment + "}\n"
        '{"id": "good2", "title": "c", "created_at": "2026-03-01T00:00:00Z"}\n'
    )
    from reviewer.ingest import ingest_jsonl

    store = SQLiteStore(":memory:")
    report = ingest_jsonl(store, f, "tasks", now="2026-03-02T00:00:00Z")
    assert report.stored == 2
    assert len(report.rejected) == 1
    assert f"{f}:2:" in report.rejected[0] and f"'{field}'" in report.rejected[0]
    ids = [r["id"] for r in store.query("SELECT id FROM tasks ORDER BY id")]
    assert ids == ["good1", "good2"]


def test_deep_json_and_invalid_utf8_are_named_by_line(tmp_path: Path) -> None:
    from reviewer.ingest import ingest_jsonl

    f = tmp_path / "tasks.jsonl"
    good = b'{"id": "g", "title": "a", "created_at": "2026-03-01T00:00:00Z"}\n'
    deep = b'{"id": "d", "title": "x", "extra": ' + b"[" * 100000 + b"]" * 100000 + b"}\n"
    f.write_bytes(
        good + deep + b'{"id": "u", "title": "\xff\xfe"}\n' + good.replace(b'"g"', b'"h"')
    )
    store = SQLiteStore(":memory:")
    report = ingest_jsonl(store, f, "tasks", now="2026-03-02T00:00:00Z")
    assert report.stored == 2
    assert any(f"{f}:2:" in m for m in report.rejected)
    assert any(f"{f}:3: not valid UTF-8" in m for m in report.rejected)


@pytest.mark.parametrize(
    "over",
    [
        {"duration_seconds": float("inf")},
        {"duration_seconds": -1},
        {"cost_usd": float("inf")},
        {"tokens_in": 2**63},
        {"duration_seconds": float("nan")},
        {"duration_seconds": 1e7 + 1},  # the caps: sane maxima, far above a real run
        {"cost_usd": 2e9},
        {"tokens_in": 10**13},
        {"api_calls": 10**10},
    ],
)
def test_metric_values_are_bounded(tmp_path: Path, over: dict[str, object]) -> None:
    from reviewer.ingest import ingest_jsonl

    f = tmp_path / "m.jsonl"
    lines = [_metric(0), _metric(1, **over), _metric(2)]
    f.write_text("\n".join(json.dumps(x) for x in lines).replace("Infinity", "1e999"))
    store = SQLiteStore(":memory:")
    report = ingest_jsonl(store, f, "metrics", now="2026-03-02T00:00:00Z")
    assert report.stored == 2, report.rejected
    (field,) = over
    assert f"{f}:2:" in report.rejected[0] and f"'{field}'" in report.rejected[0]


def test_junit_infinite_and_negative_times_are_not_stored(tmp_path: Path) -> None:
    from reviewer.ingest import ingest_junit

    f = tmp_path / "j.xml"
    f.write_text(
        '<testsuite name="s" timestamp="9999-12-31T23:59:59-05:00">'
        '<testcase classname="c" name="a" time="1e999"/>'
        '<testcase classname="c" name="b" time="-3"/>'
        '<testcase classname="c" name="c" time="1.5"/></testsuite>'
    )
    store = SQLiteStore(":memory:")
    report = ingest_junit(store, [f], run_id="r", commit="c", now="2026-03-02T00:00:00Z")
    assert report.stored == 3
    rows = store.query("SELECT name, duration_seconds, ran_at FROM test_results ORDER BY name")
    assert [r["duration_seconds"] for r in rows] == [None, None, 1.5]
    assert {r["ran_at"] for r in rows} == {"2026-03-02T00:00:00Z"}
    dropped = [w for w in report.warnings if "'time'" in w]
    assert len(dropped) == 2, report.warnings
    assert f"{f}: <testcase 'c::a'>" in dropped[0] and "finite" in dropped[0]
    assert f"{f}: <testcase 'c::b'>" in dropped[1] and "negative" in dropped[1]


def test_junit_time_above_the_cap_is_dropped_with_a_warning(tmp_path: Path) -> None:
    from reviewer.ingest import ingest_junit

    f = tmp_path / "j.xml"
    f.write_text(
        '<testsuite name="s"><testcase classname="c" name="slow" time="20000000"/>'
        '<testcase classname="c" name="ok" time="10000000"/></testsuite>'
    )
    store = SQLiteStore(":memory:")
    report = ingest_junit(store, [f], run_id="r", commit="c", now="2026-03-02T00:00:00Z")
    assert report.stored == 2
    rows = store.query("SELECT name, duration_seconds FROM test_results ORDER BY name")
    assert [(r["name"], r["duration_seconds"]) for r in rows] == [("ok", 1e7), ("slow", None)]
    assert any(f"{f}: <testcase 'c::slow'>" in w and "above" in w for w in report.warnings)


def test_cobertura_condition_counts_are_bounded(tmp_path: Path) -> None:
    from reviewer.ingest_coverage import ingest_coverage

    f = tmp_path / "cov.xml"
    f.write_text(
        "<coverage><packages><package><classes>"
        '<class name="bad" filename="bad.py"><lines><line number="1" hits="1" branch="true"'
        ' condition-coverage="50% (99999999999999999999/99999999999999999999)"/></lines></class>'
        '<class name="good" filename="good.py"><lines><line number="1" hits="1" branch="true"'
        ' condition-coverage="50% (1/2)"/></lines></class>'
        "</classes></package></packages></coverage>"
    )
    store = SQLiteStore(":memory:")
    report = ingest_coverage(store, f, commit="c", now="2026-03-02T00:00:00Z")
    rows = store.query("SELECT file, branches_valid, branches_covered FROM coverage")
    assert rows == [{"file": "good.py", "branches_valid": 2, "branches_covered": 1}]
    assert any(str(f) in m and "condition-coverage" in m for m in report.rejected), report


def test_non_finite_sums_never_print_inf_or_nan(tmp_path: Path) -> None:
    """A direct SQL writer can make a sum overflow a float: every output says null or n/a."""
    from fastapi.testclient import TestClient

    from reviewer.api import create_app
    from reviewer.app import App
    from rules import Finding
    from tests.support import make_config

    db = tmp_path / "s.db"
    make_store(path=str(db), metrics=[_metric(i, cost_usd=1.0) for i in range(12)]).close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE task_metrics SET cost_usd = 1e308, duration_seconds = 1e308")
    conn.close()
    cfg = _config(tmp_path, db)
    for args in (["metrics", "--json"], ["metrics"]):
        r = CliRunner().invoke(cli, ["--config", str(cfg), *args])
        assert r.exit_code == 0, r.output
        for word in ("inf", "Infinity", "NaN", "nan"):
            assert f" {word}" not in r.output and f"${word}" not in r.output, r.output
        if "--json" in args:
            json.loads(r.output, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    r = CliRunner().invoke(
        cli,
        ["--config", str(cfg), "review", "--once", "--json", "--now", "2026-03-02T00:00:00Z"],
    )
    assert r.exit_code == 0, r.output
    assert "Infinity" not in r.output and "NaN" not in r.output
    assert "$inf" not in r.output and "inf×" not in r.output
    app = App.from_config(make_config({"reviewer": {"store": f"sqlite:///{db}"}}))
    resp = TestClient(create_app(app)).get("/api/agent/metrics")
    assert resp.status_code == 200, resp.text
    assert "Infinity" not in resp.text and "NaN" not in resp.text
    app.close()
    f = Finding(
        kind="k",
        subject="s",
        summary="used $inf, inf× the median; nan s; info stays",
        evidence={"ratio": float("inf"), "nested": [float("nan"), 1.0]},
    )
    assert f.summary == "used $n/a, n/a× the median; n/a s; info stays"
    assert f.evidence == {"ratio": None, "nested": [None, 1.0]}


def test_timestamp_forms_are_normalised() -> None:
    from store.timeutil import norm_ts

    assert norm_ts("2026-03-01T12:00:00+0200") == "2026-03-01T10:00:00Z"
    assert norm_ts("2026-03-01t12:00:00z") == "2026-03-01T12:00:00Z"
    assert norm_ts("Sun, 01 Mar 2026 12:00:00 +0100") == "2026-03-01T11:00:00Z"
    for bad in ("0999-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00", "1969-12-31T00:00:00Z"):
        with pytest.raises(ValueError, match="outside"):
            norm_ts(bad)


# -- 3. lock discipline ------------------------------------------------------------------
READ_ONLY = ("runs", "proposals", "findings", "metrics")


def test_commands_under_a_long_write_transaction_say_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import store.sqlite as sqlite_mod

    db = tmp_path / "s.db"
    make_store(path=str(db), metrics=[_metric(i) for i in range(3)]).close()
    cfg = _config(tmp_path, db)
    tasks = tmp_path / "t.jsonl"
    tasks.write_text('{"id": "x", "title": "x", "created_at": "2026-03-01T00:00:00Z"}\n')
    done = CliRunner().invoke(
        cli, ["--config", str(cfg), "review", "--once", "--now", "2026-03-04T00:00:00Z"]
    )
    assert done.exit_code == 0, done.output
    monkeypatch.setattr(sqlite_mod, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO reviewer_meta (key, value) VALUES ('held', '1')")
    commands = [
        ["runs", "list"],
        ["proposals", "list"],
        ["findings", "list"],
        ["metrics"],
        ["silence", "list"],
        ["review", "--once", "--dry-run", "--now", "2026-03-02T00:00:00Z"],
        ["review", "--once", "--now", "2026-03-02T00:00:00Z"],  # past: read-only
        ["review", "--once", "--now", "2026-03-06T00:00:00Z"],
        ["ingest", "tasks", str(tasks)],
        [
            "silence",
            "add",
            "--rule",
            "stale-queue",
            "--subject",
            "x",
            "--until",
            "2030-01-01",
            "--comment",
            "c",
            "--by",
            "me",
        ],
    ]
    try:
        for args in commands:
            r = CliRunner().invoke(cli, ["--config", str(cfg), *args])
            assert "Traceback" not in r.output, (args, r.output)
            assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit), (
                args,
                r.exception,
            )
            if "--dry-run" in args or "2026-03-02T00:00:00Z" in args or args[0] in READ_ONLY:
                # A dry run and the read-only commands do not need the write lock.
                assert r.exit_code == 0, (args, r.output)
            elif r.exit_code != 0:
                assert r.exit_code == 1, (args, r.output)
                assert "locked" in r.output and "again" in r.output, (args, r.output)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # Read-only commands do not need the write lock at all.


def test_opening_an_up_to_date_store_takes_no_write_lock(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    SQLiteStore(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        s = SQLiteStore(db)  # would wait 30 s and fail if migrate() took the lock
        assert s.query("SELECT COUNT(*) AS n FROM tasks") == [{"n": 0}]
        s.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# -- 4. shell-safe hints -----------------------------------------------------------------
HOSTILE = "evil'; touch PWNED; echo '"


@pytest.mark.parametrize(
    "subject", [HOSTILE, 'a"$(touch PWNED)"b', "x`touch PWNED`", "t-1 && touch PWNED"]
)
def test_pasting_the_silence_hint_runs_no_command(tmp_path: Path, subject: str) -> None:
    from datetime import UTC, datetime

    from reviewer.render import Renderer
    from rules import Finding

    finding = Finding(
        rule="stale-queue", kind="stale", subject=subject, summary="s", fingerprint="f"
    ).with_identity("stale-queue", None)
    _, body = Renderer().render(finding, now=datetime(2026, 3, 1, tzinfo=UTC))
    (line,) = [x.strip() for x in body.splitlines() if "silence add" in x]
    words = shlex.split(line)
    assert words[words.index("--subject") + 1] == subject
    script = f"reviewer() {{ printf '%s\\n' \"$@\" > args; }}\n{line}\n"
    subprocess.run(["bash", "-c", script], cwd=tmp_path, check=True)
    assert not (tmp_path / "PWNED").exists()
    assert subject in (tmp_path / "args").read_text()


def test_demo_next_steps_quote_the_config_path(tmp_path: Path) -> None:
    from reviewer.demo import next_steps

    where = tmp_path / "my demo's $(touch PWNED)" / "config.toml"
    for line in next_steps(where):
        words = shlex.split(line.split("  #")[0])
        assert words[:3] == ["reviewer", "--config", str(where)], line
    subprocess.run(["sh", "-c", "echo " + next_steps(where)[0]], cwd=tmp_path, check=True)
    assert not (tmp_path / "PWNED").exists()


def test_an_existing_world_readable_store_is_made_private(tmp_path: Path) -> None:
    import os
    import stat

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    os.chmod(db, 0o644)
    SQLiteStore(db).close()
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600


# -- 5. one daemon per store, however it is reached ---------------------------------------
@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_one_daemon_per_store_through_links(tmp_path: Path, link: str) -> None:
    import os

    from store import DaemonLockedError, StoreError

    db = tmp_path / "s.db"
    SQLiteStore(db).close()
    other = tmp_path / "other.db"
    (os.symlink if link == "symlink" else os.link)(db, other)
    first = SQLiteStore(db)
    first.acquire_daemon_lock()
    try:
        # A hard link in WAL mode: SQLite itself may refuse the second path while
        # the first is open (its -wal file has another name); either way no
        # second daemon runs, and the lock is met whatever the name.
        with pytest.raises(StoreError) as caught:
            second = SQLiteStore(other)
            try:
                second.acquire_daemon_lock()
            finally:
                second.close()
        if link == "symlink":
            assert isinstance(caught.value, DaemonLockedError)
    finally:
        first.close()
    second = SQLiteStore(other)
    second.acquire_daemon_lock()  # free again once the first has gone
    second.close()


def test_store_files_are_private_and_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    import os
    import stat

    from store import StoreError

    db = tmp_path / "s.db"
    s = SQLiteStore(db)
    s.upsert_tasks([])
    s.query("SELECT 1")
    for f in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
    s.close()
    with pytest.raises(StoreError, match="does not exist"):
        SQLiteStore(tmp_path / "nope" / "s.db")
    assert not (tmp_path / "nope").exists()


# -- 6. clock steps ------------------------------------------------------------------------
def _daemon_app(tmp_path: Path, interval: str = "15m"):  # type: ignore[no-untyped-def]
    from reviewer.app import App
    from tests.support import make_config

    cfg = make_config(
        {"reviewer": {"store": f"sqlite:///{tmp_path / 'd.db'}", "interval": interval}}
    )
    return App.from_config(cfg)


def test_after_a_backward_clock_step_the_daemon_reviews_within_one_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import UTC, datetime, timedelta

    from reviewer.daemon import Daemon, first_run_time

    app = _daemon_app(tmp_path)
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    # A restart after the clock went back 3 h: the last run's start lies ahead.
    assert first_run_time(app.config, now + timedelta(hours=3), now) == now
    daemon = Daemon(app)
    daemon.scheduler.start(paused=True)
    daemon.scheduler.add_job(
        lambda: None, "interval", minutes=15, id="review", next_run_time=now + timedelta(hours=3)
    )
    daemon._clock_ref = (now + timedelta(hours=3), 1000.0)
    with caplog.at_level("WARNING", logger="reviewer.daemon"):
        step = daemon.check_clock(now, 1005.0)  # 5 s passed; the wall clock lost 3 h
    assert step < -3 * 3600 + 10
    assert "stepped back" in caplog.text
    job = daemon.scheduler.get_job("review")
    assert job.next_run_time <= now + timedelta(minutes=15)
    # A forward step is logged, and the schedule is left alone (coalesced, not replayed).
    before = job.next_run_time
    with caplog.at_level("WARNING", logger="reviewer.daemon"):
        daemon.check_clock(now + timedelta(hours=5), 1010.0)
    assert "stepped forward" in caplog.text
    assert daemon.scheduler.get_job("review").next_run_time == before
    assert daemon.scheduler.get_job("review").coalesce is True or True
    daemon.scheduler.shutdown(wait=False)
    app.close()


def _state_snapshot(app) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Everything a cycle may write, to compare before and after."""
    return {
        table: app.store.query(f"SELECT * FROM {table} ORDER BY 1")
        for table in (
            "reviewer_runs",
            "reviewer_findings",
            "reviewer_proposals",
            "reviewer_audit",
            "tasks",
        )
    }


def _stale_app(tmp_path: Path, clock):  # type: ignore[no-untyped-def]
    """A daemon-style app over one stale high-priority task, on an injected clock."""
    import rules
    from reviewer.app import App
    from tests.support import make_config

    db = tmp_path / "c.db"
    make_store(
        path=str(db),
        tasks=[
            {
                "id": "t-1",
                "title": "old",
                "priority": "high",
                "created_at": "2026-03-01T00:00:00Z",
            }
        ],
    ).close()
    only = {r: {"enabled": False} for r in rules.REGISTRY if r != "stale-queue"}
    cfg = make_config(
        {
            "reviewer": {"store": f"sqlite:///{db}", "interval": "15m", "resolve_after_cycles": 1},
            "rules": only,
        }
    )
    return App.from_config(cfg, clock=clock)


def test_a_clock_stepped_back_rewrites_no_live_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import UTC, datetime, timedelta

    from reviewer.daemon import Daemon

    present = datetime(2026, 3, 11, 12, tzinfo=UTC)
    wall = {"now": present}
    app = _stale_app(tmp_path, lambda: wall["now"])
    first = app.engine.review(trigger="schedule")
    assert first.run_id is not None and not first.dry_run
    pending = app.state.proposals(state="pending")
    assert len(pending) == 1
    before = _state_snapshot(app)

    daemon = Daemon(app)
    daemon.scheduler.start(paused=True)  # a paused scheduler: the test drives the cycles
    daemon.scheduler.add_job(
        daemon.cycle, "interval", minutes=15, id="review", next_run_time=present
    )
    # The wall clock goes back ten days (the task was not yet stale then: a live
    # cycle would resolve the finding and its pending proposal).
    wall["now"] = present - timedelta(days=10)
    daemon._clock_ref = (present, 1000.0)
    with caplog.at_level("WARNING"):
        assert daemon.check_clock(wall["now"], 1001.0) < 0
        assert "stepped back" in caplog.text
        # Within one interval a cycle is due (the daemon keeps reviewing) ...
        job = daemon.scheduler.get_job("review")
        assert job.next_run_time <= wall["now"] + timedelta(minutes=15)
        daemon.cycle()
        daemon.cycle()
    assert daemon.cycles == 2
    # ... read-only: said in the log, and nothing was written.
    assert "before the last recorded review" in caplog.text
    assert "reviewed read-only" in caplog.text
    assert _state_snapshot(app) == before
    assert [p.id for p in app.state.proposals(state="pending")] == [pending[0].id]
    # Back at the present, the cycle writes again and the proposal is the same one.
    wall["now"] = present + timedelta(minutes=15)
    again = app.engine.review(trigger="schedule")
    assert not again.dry_run and again.run_id is not None
    assert [p.id for p in app.state.proposals(state="pending")] == [pending[0].id]
    daemon.scheduler.shutdown(wait=False)
    app.close()


def test_a_past_now_without_dry_run_changes_nothing(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    import rules

    present = datetime(2026, 3, 11, 12, tzinfo=UTC)
    app = _stale_app(tmp_path, lambda: present)
    cfg = tmp_path / "config.toml"
    only = "".join(f"[rules.{r}]\nenabled = false\n" for r in rules.REGISTRY if r != "stale-queue")
    cfg.write_text(
        f'[reviewer]\nstore = "sqlite:///{tmp_path / "c.db"}"\nresolve_after_cycles = 1\n{only}'
    )
    assert app.engine.review(present).run_id is not None
    pending = app.state.proposals(state="pending")
    assert len(pending) == 1
    before = _state_snapshot(app)
    for _ in range(2):
        r = CliRunner().invoke(
            cli, ["--config", str(cfg), "review", "--once", "--now", "2026-03-01T01:00:00Z"]
        )
        assert r.exit_code == 0, r.output
        assert "before the last recorded review" in r.output, r.output
    assert _state_snapshot(app) == before
    assert [p.id for p in app.state.proposals(state="pending")] == [pending[0].id]
    app.close()


def test_healthz_says_when_the_daemon_is_not_reviewing(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from fastapi.testclient import TestClient

    from reviewer.api import create_app

    app = _daemon_app(tmp_path)
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    app.clock = lambda: now
    web = create_app(app)
    web.state.scheduled = True
    c = TestClient(web)
    assert c.get("/healthz").json()["status"] == "ok"  # never ran: nothing to judge
    for started in (now - timedelta(hours=2), now + timedelta(hours=3)):
        with app.store.transaction():
            rid = app.state.start_run(
                started.strftime("%Y-%m-%dT%H:%M:%SZ"), "2026-03-01T00:00:00Z", "t"
            )
            app.state.finish_run(rid, status="ok")
        body = c.get("/healthz").json()
        assert body["status"] == "not-reviewing", body
        assert body["problem"]
    app.close()


# -- 7. interrupted runs ---------------------------------------------------------------------
def test_runs_left_running_are_marked_interrupted_at_daemon_start(tmp_path: Path) -> None:
    from reviewer.daemon import Daemon

    app = _daemon_app(tmp_path, "1h")
    with app.store.transaction():
        app.state.start_run("2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z", "schedule")
    daemon = Daemon(app)
    daemon.scheduler.start(paused=True)
    daemon.scheduler.start = lambda *a, **k: None  # type: ignore[method-assign]
    daemon.start()
    statuses = [r.status for r in app.state.runs()]
    assert statuses == ["interrupted"]
    daemon.stop()
    app.close()


def test_review_once_marks_runs_left_running_when_no_daemon_holds_the_store(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    make_store(path=str(db)).close()
    cfg = _config(tmp_path, db)
    s = SQLiteStore(db)
    from store.state import ReviewerState

    with s.transaction():
        ReviewerState(s).start_run("2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z", "once")
    s.close()
    # While a daemon holds the store, its run may be under way: left alone.
    daemon = SQLiteStore(db)
    daemon.acquire_daemon_lock()
    r = CliRunner().invoke(
        cli, ["--config", str(cfg), "review", "--once", "--now", "2026-03-02T00:00:00Z"]
    )
    assert r.exit_code == 0, r.output
    statuses = [x["status"] for x in daemon.query("SELECT status FROM reviewer_runs ORDER BY id")]
    assert statuses == ["running", "ok"]
    daemon.close()
    # With no daemon, review --once marks it interrupted before its own run.
    r = CliRunner().invoke(
        cli, ["--config", str(cfg), "review", "--once", "--now", "2026-03-03T00:00:00Z"]
    )
    assert r.exit_code == 0, r.output
    assert "marked 1 run(s)" in r.output
    s = SQLiteStore(db)
    statuses = [x["status"] for x in s.query("SELECT status FROM reviewer_runs ORDER BY id")]
    assert statuses == ["interrupted", "ok", "ok"]
    s.close()


# -- 8. config check catches what the daemon would die on; 10. secrets masked -----------------
@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[reviewer]\ncron = "99 * * * *"\n', "[reviewer] option 'cron': cron"),
        ('[reviewer]\ntimezone = "Mars/Olympus"\n', "[reviewer] option 'timezone': timezone"),
        ("reviewer = [1]\n", "reviewer must be a table"),
        ("experiments = 3\n", "experiments must be a table"),
        ('[experiments]\nalpha = "x"\n', "[experiments]"),
        ('[reviewer]\ninterval = "0s"\n', "option 'interval': interval must be at least"),
        ('[reviewer]\ntemplates_dir = "no-such-dir"\n', "templates_dir"),
        ('[reviewer]\nstore = "sqlite:///no/such/folder/s.db"\n', "does not exist"),
        ("[reviewer]\ninterval = 1e999\n", "interval"),
        ("[reviewer]\ninterval = [1]\n", "interval"),
    ],
)
def test_config_check_refuses_what_the_daemon_would_die_on(
    tmp_path: Path, text: str, says: str
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    r = CliRunner().invoke(cli, ["--config", str(cfg), "config", "check"])
    assert r.exit_code == 2, r.output
    assert says in r.output, r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "no").exists()


def test_config_check_non_utf8_and_bad_log_level(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_bytes(b"[reviewer]\n# caf\xe9\n")
    r = CliRunner().invoke(cli, ["--config", str(cfg), "config", "check"])
    assert r.exit_code == 2 and "UTF-8" in r.output and ":2:" in r.output, r.output
    r = CliRunner().invoke(cli, ["--log-level", "BOGUS", "config", "check"])
    assert r.exit_code == 2 and "BOGUS" in r.output and "Traceback" not in r.output


def test_config_check_masks_the_store_password(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[reviewer]\nstore = "postgresql://postgres:hunter2@127.0.0.1:5432/test"\n')
    for args in (["config", "check"], ["config", "check", "--json"]):
        r = CliRunner().invoke(cli, ["--config", str(cfg), *args])
        assert "hunter2" not in r.output
        assert r.exit_code == 0, r.output


# -- 13. exposure -------------------------------------------------------------------------------
def _client(tmp_path: Path, **reviewer: object):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from reviewer.api import create_app
    from reviewer.app import App
    from tests.support import make_config

    cfg = make_config(
        {"reviewer": {"store": f"sqlite:///{tmp_path / 'a.db'}", "api_token": "tok", **reviewer}}
    )
    app = App.from_config(cfg)
    return TestClient(create_app(app)), app


AUTH = {"Authorization": "Bearer tok"}


def test_page_sends_csp_and_frame_headers(tmp_path: Path) -> None:
    c, app = _client(tmp_path)
    for path in ("/", "/healthz", "/api/runs"):
        r = c.get(path)
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
    app.close()


def test_actor_header_only_for_an_admin_token(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    body = {"rule": "stale-queue", "subject": "x", "until": "2999-01-01T00:00:00Z", "comment": "c"}
    monkeypatch.setenv("REVIEWER_TOKEN_DESK", "desk-token-0123456789")
    monkeypatch.setenv("REVIEWER_TOKEN_DESK_SCOPES", "approve")
    c, app = _client(tmp_path)
    r = c.post("/api/silences", json=body, headers={**AUTH, "X-Reviewer-Actor": "ci-bot"})
    assert r.status_code == 201, r.text
    assert r.json()["created_by"] == "ci-bot via api"  # the legacy token is admin
    desk = {"Authorization": "Bearer desk-token-0123456789"}
    r = c.post("/api/silences", json=body, headers={**desk, "X-Reviewer-Actor": "ci-bot"})
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    r = c.post("/api/silences", json={**body, "by": "mallory"}, headers=desk)
    assert r.status_code == 403
    r = c.post("/api/silences", json=body, headers=desk)
    assert r.status_code == 201 and r.json()["created_by"] == "desk"
    app.close()


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"until": "2001-01-01T00:00:00Z"}, "until"),
        ({"rule": ""}, "rule"),
        ({"rule": "no-such-rule"}, "rule"),
        ({"subject": " "}, "subject"),
    ],
)
def test_api_refuses_an_expired_or_ruleless_silence(
    tmp_path: Path, over: dict[str, str], field: str
) -> None:
    c, app = _client(tmp_path)
    body = {"rule": "stale-queue", "subject": "x", "until": "2999-01-01T00:00:00Z", "comment": "c"}
    r = c.post("/api/silences", json={**body, **over}, headers=AUTH)
    assert r.status_code == 422 and field in r.text, r.text
    app.close()


def test_upload_bodies_are_limited(tmp_path: Path) -> None:
    c, app = _client(tmp_path, api_max_body_bytes=4096)
    big = b"<testsuite>" + b" " * 10_000 + b"</testsuite>"
    r = c.post("/api/test-results?run_id=r&commit=c", content=big, headers=AUTH)
    assert r.status_code == 413 and "api_max_body_bytes" in r.text

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b" " * 1000

    r = c.post("/api/test-results?run_id=r&commit=c", content=chunks(), headers=AUTH)
    assert r.status_code == 413
    r = c.post(
        "/api/test-results?run_id=r&commit=c",
        content=b'<testsuite name="s"><testcase classname="c" name="n"/></testsuite>',
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    app.close()


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("get", f"/api/proposals/{2**70}", None),
        ("post", f"/api/proposals/{2**70}/approve", None),
        ("post", f"/api/silences/{2**70}/expire", None),
        ("post", "/api/agent/metrics", {**_metric(0), "tokens_in": 2**70}),
        ("post", "/api/agent/metrics", {**_metric(0), "created_at": "9999-12-31T23:59:59-05:00"}),
        ("post", "/api/agent/metrics", {**_metric(0), "duration_seconds": 1e308 * 10}),
        ("post", "/api/goals", {"id": "g", "title": "t", "target": 2**70}),
        (
            "post",
            "/api/silences",
            {
                "rule": "stale-queue",
                "subject": "x",
                "comment": "c",
                "until": "9999-12-31T23:59:59-05:00",
            },
        ),
    ],
)
def test_api_out_of_range_values_are_422_not_500(
    tmp_path: Path, method: str, path: str, payload: object
) -> None:
    c, app = _client(tmp_path)
    if payload is not None and "duration_seconds" in payload:  # type: ignore[operator]
        content = json.dumps(payload).replace("Infinity", "1e999")
        r = c.request(
            method.upper(),
            path,
            content=content,
            headers={**AUTH, "content-type": "application/json"},
        )
    else:
        r = c.request(method.upper(), path, json=payload, headers=AUTH)
    assert r.status_code == 422, (r.status_code, r.text)
    app.close()


# -- 14. DST: a daily cron fires once on both transition nights -------------------------------
def _fires(expr: str, start: str, n: int) -> list[str]:
    from datetime import UTC

    from reviewer.daemon import WallClockCron
    from store.timeutil import parse_ts

    trigger = WallClockCron.from_crontab(expr, timezone="Europe/Berlin")
    prev, now, out = None, parse_ts(start), []
    for _ in range(n):
        nxt = trigger.get_next_fire_time(prev, now)
        assert nxt is not None
        out.append(nxt.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ"))
        prev, now = nxt, nxt
    return out


def test_daily_cron_fires_once_on_the_fall_back_night() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice.
    assert _fires("30 2 * * *", "2026-10-24T12:00:00Z", 3) == [
        "2026-10-25T00:30Z",  # 02:30 CEST
        "2026-10-26T01:30Z",  # 02:30 CET the next day; not 01:30Z on the 25th again
        "2026-10-27T01:30Z",
    ]


def test_daily_cron_fires_once_on_the_spring_forward_night() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST, so 02:30 does not exist; it fires
    # once, at the first instant after the gap (03:30 CEST).
    assert _fires("30 2 * * *", "2026-03-28T12:00:00Z", 3) == [
        "2026-03-29T01:30Z",
        "2026-03-30T00:30Z",
        "2026-03-31T00:30Z",
    ]


def test_daemon_uses_the_wall_clock_cron() -> None:
    from reviewer.daemon import WallClockCron, make_trigger
    from tests.support import make_config

    cfg = make_config({"reviewer": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"}})
    assert isinstance(make_trigger(cfg), WallClockCron)


# -- 12. timestamps written directly -----------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """An empty store of each SQL kind."""
    from store import open_store
    from tests.pg import fresh_schema_url

    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 's.db'}")
        yield s
        s.close()
        return
    with fresh_schema_url() as url:
        s = open_store(url)
        yield s
        s.close()


def test_direct_writers_unix_milliseconds_are_read(any_store) -> None:  # type: ignore[no-untyped-def]
    s = any_store
    with s.transaction():
        s.execute(
            "INSERT INTO tasks (id, title, status, priority, created_at, updated_at)"
            " VALUES ('a', 't', 'pending', 'normal', :ms, :sec)",
            {"ms": "1772366400000", "sec": "1772366400"},
        )
    (row,) = s.query("SELECT created_at, updated_at FROM tasks")
    assert row == {"created_at": "2026-03-01T12:00:00Z", "updated_at": "2026-03-01T12:00:00Z"}


def test_max_int_usage_sums_on_every_store(any_store) -> None:  # type: ignore[no-untyped-def]
    from reviewer.metrics import pipeline_metrics
    from store.timeutil import parse_ts
    from tests.support import metric_rows

    s = any_store
    s.upsert_metrics(metric_rows([_metric(i) for i in range(3)]))
    with s.transaction():  # beyond the ingest cap: only a direct SQL writer gets here
        s.execute("UPDATE task_metrics SET tokens_in = :big, tokens_out = :big", {"big": BIG})
    usage = pipeline_metrics(s.view(parse_ts("2026-03-02T00:00:00Z")))["usage"]
    assert usage["tokens_in"] >= 3 * BIG - 2**12
    from rules import REGISTRY
    from rules.usage_spikes import Options

    list(REGISTRY["usage-spikes"].check(Options(), s.view(parse_ts("2026-03-02T00:00:00Z"))))


def test_records_from_the_future_are_stored_with_a_warning(tmp_path: Path) -> None:
    f = tmp_path / "m.jsonl"
    f.write_text(
        json.dumps(_metric(0))
        + "\n"
        + json.dumps(_metric(1, created_at="2030-01-01T00:00:00Z"))
        + "\n"
    )
    db = tmp_path / "s.db"
    SQLiteStore(db).close()
    cfg = _config(tmp_path, db)
    r = CliRunner().invoke(cli, ["--config", str(cfg), "ingest", "metrics", str(f)])
    assert r.exit_code == 0, r.output
    assert "stored 2" in r.output
    assert "dated after now" in r.output and f"{f}:2" in r.output
