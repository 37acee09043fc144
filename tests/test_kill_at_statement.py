"""Crash safety: a process killed at its N-th SQL statement leaves a consistent store.

A forked child counts the SQL statements its connections run (sqlite3's
``set_trace_callback``) and calls ``os._exit`` at statement N, the way a kill
leaves a process: no cleanup, no commit. Operations: a review (with
``approval = "auto"``, so it files backlog tasks), an ingest (committed in
batches), approving proposals, the first open of a new store (every migration)
and a daemon's scheduled cycle. For each N the store must pass
``integrity_check``, hold every task once, no proposal half scheduled, and an
ingest's stored rows are whole batches. Then a daemon start marks the killed run
``interrupted``, and the operation run again completes, with nothing lost or
doubled. Children are forked from the test process (no interpreter start per
kill), so the whole file takes seconds, not minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

KILLED = 77
NOW = "2026-03-10T00:00:00Z"

STALE = [
    {
        "id": f"s{i}",
        "title": f"stale task {i}",
        "priority": "critical",
        "created_at": "2026-01-01T00:00:00Z",
    }
    for i in range(4)
]
NEW = [{"id": f"n{i}", "title": f"new {i}", "created_at": "2026-03-01T00:00:00Z"} for i in range(8)]


def _operation(what: str, work: Path) -> None:
    """The operation under test, run in the child against ``work``'s store."""
    import reviewer.ingest as ing
    from reviewer.app import App
    from reviewer.config import load_config
    from reviewer.daemon import Daemon
    from store.timeutil import parse_ts

    ing.INGEST_BATCH = 3
    app = App.from_config(load_config(work / "config.toml"))
    try:
        if what == "review":
            app.engine.review(parse_ts(NOW))
        elif what == "ingest":
            ing.ingest_jsonl(app.store, work / "new.jsonl", "tasks", now=NOW)
        elif what == "approve":
            for p in app.state.proposals(state="pending"):
                app.engine.approve(p.id, by="tester", reason="kill test")
        elif what == "daemon":
            app.store.acquire_daemon_lock()
            Daemon(app).cycle()
        # "migrate": opening the new store ran every migration
    finally:
        app.close()


def _fork(fn: Callable[[], None], kill_at: int | None, counted: Path | None = None) -> int:
    """Run ``fn`` in a forked child, killed at its ``kill_at``-th SQL statement; exit code."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            count = 0
            real = sqlite3.connect

            def trace(_stmt: str) -> None:
                nonlocal count
                count += 1
                if count == kill_at:
                    os._exit(KILLED)

            def connect(*a: Any, **k: Any) -> sqlite3.Connection:
                conn = real(*a, **k)
                conn.set_trace_callback(trace)
                return conn

            sqlite3.connect = connect  # type: ignore[assignment]
            fn()
            if counted is not None:
                counted.write_text(str(count))
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _daemon_start(work: Path) -> None:
    """What a daemon does when it starts: runs left ``running`` become ``interrupted``."""
    from reviewer.app import App
    from reviewer.config import load_config
    from reviewer.daemon import Daemon

    app = App.from_config(load_config(work / "config.toml"))
    app.store.acquire_daemon_lock()
    daemon = Daemon(app)
    daemon.scheduler.start(paused=True)
    daemon.scheduler.start = lambda *a, **k: None  # type: ignore[method-assign]
    daemon.start()
    daemon.stop()
    app.close()


def _check(db: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # Every scheduled proposal's task is in the backlog, and every task the
        # reviewer filed belongs to a scheduled proposal: no half state.
        scheduled = [
            r[0]
            for r in conn.execute(
                "SELECT task_id FROM reviewer_proposals WHERE task_id IS NOT NULL"
            )
        ]
        filed = [r[0] for r in conn.execute("SELECT id FROM tasks WHERE source = 'reviewer'")]
        assert sorted(scheduled) == sorted(filed), (scheduled, filed)
        assert len(set(filed)) == len(filed)
        states = {
            r[0] for r in conn.execute("SELECT state FROM reviewer_proposals WHERE task_id IS NULL")
        }
        # approved, not yet filed: the next cycle files it (an approval is not lost)
        assert states <= {"pending", "approved", "rejected", "resolved", "superseded"}, states
        # One live proposal per finding, never two.
        doubled = conn.execute(
            "SELECT fingerprint FROM reviewer_proposals"
            " WHERE state IN ('pending', 'approved', 'scheduled')"
            " GROUP BY fingerprint HAVING COUNT(*) > 1"
        ).fetchall()
        assert not doubled, doubled
        # A run that finished carries the counts of what it committed.
        for run_id, findings in conn.execute(
            "SELECT id, findings FROM reviewer_runs WHERE status = 'ok'"
        ).fetchall():
            assert findings is not None, run_id
        runs = dict(conn.execute("SELECT status, COUNT(*) FROM reviewer_runs GROUP BY status"))
        new_tasks = conn.execute("SELECT COUNT(*) FROM tasks WHERE id LIKE 'n%'").fetchone()[0]
        return {"runs": runs, "new_tasks": new_tasks, "filed": len(filed)}
    finally:
        conn.close()


def _base(tmp_path: Path, what: str) -> Path:
    """The store before the operation: stale tasks (and for approve, pending proposals)."""
    from reviewer.app import App
    from reviewer.config import load_config
    from reviewer.ingest import ingest_jsonl
    from store.timeutil import parse_ts

    base = tmp_path / "base"
    base.mkdir()
    approval = "manual" if what == "approve" else "auto"
    (base / "config.toml").write_text(
        '[reviewer]\nstore = "sqlite:///pipeline.db"\n'
        f'[rules.stale-queue]\napproval = "{approval}"\n'
    )
    (base / "new.jsonl").write_text("\n".join(json.dumps(t) for t in NEW) + "\n")
    if what == "migrate":
        return base  # no store yet: the operation's open creates it
    seed = base / "seed.jsonl"
    seed.write_text("\n".join(json.dumps(t) for t in STALE) + "\n")
    app = App.from_config(load_config(base / "config.toml"))
    ingest_jsonl(app.store, seed, "tasks", now="2026-03-01T00:00:00Z")
    if what == "approve":
        app.engine.review(parse_ts("2026-03-09T00:00:00Z"))
        assert app.state.proposals(state="pending")
    app.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
    app.close()
    return base


@pytest.mark.slow
@pytest.mark.parametrize("what", ["review", "ingest", "approve", "migrate", "daemon"])
def test_kill_at_every_statement_leaves_a_consistent_store(tmp_path: Path, what: str) -> None:
    base = _base(tmp_path, what)

    # How many statements the whole operation runs, unkilled, and what it leaves.
    probe = tmp_path / "probe"
    shutil.copytree(base, probe)
    counted = tmp_path / "count"
    assert _fork(lambda: _operation(what, probe), None, counted) == 0
    total = int(counted.read_text())
    assert total > 10
    whole = _check(probe / "pipeline.db")
    step = max(1, total // 10)  # about ten kill points spread over the operation
    killed = interrupted = 0
    for n in range(1, total + 1, step):
        work = tmp_path / f"n{n}"
        shutil.copytree(base, work)
        code = _fork(lambda w=work: _operation(what, w), n)  # type: ignore[misc]
        assert code in (0, KILLED), code
        killed += code == KILLED
        db = work / "pipeline.db"
        if what == "migrate":  # killed between migrations: only the file must be sound
            if db.exists():
                conn = sqlite3.connect(db)
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                conn.close()
            before: dict[str, Any] = {"runs": {}}
        else:
            before = _check(db)
        # A daemon start marks a killed run interrupted; none is left running.
        assert _fork(lambda w=work: _daemon_start(w), None) == 0  # type: ignore[misc]
        after = _check(db)
        assert "running" not in after["runs"], after
        left = before["runs"].get("running", 0)
        interrupted += left
        assert after["runs"].get("interrupted", 0) == left, (n, before, after)
        if code == KILLED and what in ("review", "daemon"):
            # The killed run either committed whole (ok) or is marked interrupted.
            assert sum(after["runs"].values()) <= 1, after
        if what == "ingest":
            got = after["new_tasks"]
            assert got % 3 == 0 or got == len(NEW), got  # whole batches only
        # The operation run again completes: nothing lost, nothing doubled.
        assert _fork(lambda w=work: _operation(what, w), None) == 0  # type: ignore[misc]
        final = _check(db)
        assert final["filed"] == whole["filed"], (n, final, whole)
        assert final["new_tasks"] == whole["new_tasks"], (n, final, whole)
        shutil.rmtree(work)
    assert killed > 0
    if what in ("review", "daemon"):
        assert interrupted > 0  # some kills fell inside a run, and it was marked
