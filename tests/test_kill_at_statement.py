"""Crash safety: a process killed at its N-th SQL statement leaves a consistent store.

A child process counts the SQL statements its connections run (sqlite3's
``set_trace_callback``) and calls ``os._exit`` at statement N, during a review
(with ``approval = "auto"``, so it files backlog tasks) and during an ingest
(committed in batches). For each N the store must pass ``integrity_check``,
hold every task once, no proposal half scheduled, and an ingest's stored rows
are whole batches; the next review and ingest then succeed and file each task
exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = r"""
import os, sqlite3, sys
n_kill = int(sys.argv[1]); what = sys.argv[2]; cfg_path = sys.argv[3]
count = 0
def trace(_stmt):
    global count
    count += 1
    if count == n_kill:
        os._exit(77)
real = sqlite3.connect
def connect(*a, **k):
    conn = real(*a, **k)
    conn.set_trace_callback(trace)
    return conn
sqlite3.connect = connect
import reviewer.ingest as ing
ing.INGEST_BATCH = 3
from reviewer.app import App
from reviewer.config import load_config
from store.timeutil import parse_ts
app = App.from_config(load_config(cfg_path))
if what == "review":
    app.engine.review(parse_ts("2026-03-10T00:00:00Z"))
else:
    ing.ingest_jsonl(app.store, sys.argv[4], "tasks", now="2026-03-10T00:00:00Z")
app.close()
print("STATEMENTS", count)
"""

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


def _child(n: int, what: str, cfg: Path, extra: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(n), what, str(cfg), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _check(db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # Every scheduled proposal's task is in the backlog, and every task the
        # reviewer filed belongs to a scheduled proposal: no half state.
        scheduled = {
            r[0]
            for r in conn.execute(
                "SELECT task_id FROM reviewer_proposals WHERE task_id IS NOT NULL"
            )
        }
        filed = {r[0] for r in conn.execute("SELECT id FROM tasks WHERE source = 'reviewer'")}
        assert scheduled == filed, (scheduled, filed)
        states = {
            r[0] for r in conn.execute("SELECT state FROM reviewer_proposals WHERE task_id IS NULL")
        }
        # approved, not yet filed: the next cycle files it (an approval is not lost)
        assert states <= {"pending", "approved", "rejected", "resolved", "superseded"}, states
        # A run that finished carries the counts of what it committed.
        for run_id, findings in conn.execute(
            "SELECT id, findings FROM reviewer_runs WHERE status = 'ok'"
        ).fetchall():
            assert findings is not None, run_id
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.parametrize("what", ["review", "ingest"])
def test_kill_at_every_statement_leaves_a_consistent_store(tmp_path: Path, what: str) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.toml").write_text(
        '[reviewer]\nstore = "sqlite:///pipeline.db"\n[rules.stale-queue]\napproval = "auto"\n'
    )
    from reviewer.ingest import ingest_jsonl
    from store.sqlite import SQLiteStore

    seed = base / "seed.jsonl"
    seed.write_text("\n".join(json.dumps(t) for t in STALE) + "\n")
    s = SQLiteStore(base / "pipeline.db")
    ingest_jsonl(s, seed, "tasks", now="2026-03-01T00:00:00Z")
    s.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()
    new = base / "new.jsonl"
    new.write_text("\n".join(json.dumps(t) for t in NEW) + "\n")
    extra = [str(new)] if what == "ingest" else []

    # How many statements the whole operation runs, unkilled.
    probe = tmp_path / "probe"
    shutil.copytree(base, probe)
    done = _child(10**9, what, probe / "config.toml", [str(probe / "new.jsonl")] * bool(extra))
    assert done.returncode == 0, done.stderr
    total = int(done.stdout.split("STATEMENTS")[1])
    assert total > 10
    step = max(1, total // 12)  # bounded: about 12 kill points spread over the operation
    killed = 0
    for n in range(1, total + 1, step):
        work = tmp_path / f"n{n}"
        shutil.copytree(base, work)
        r = _child(n, what, work / "config.toml", [str(work / "new.jsonl")] * bool(extra))
        assert r.returncode in (0, 77), r.stderr
        killed += r.returncode == 77
        db = work / "pipeline.db"
        _check(db)
        if what == "ingest":
            conn = sqlite3.connect(db)
            got = conn.execute("SELECT COUNT(*) FROM tasks WHERE id LIKE 'n%'").fetchone()[0]
            conn.close()
            assert got % 3 == 0 or got == len(NEW), got  # whole batches only
        # The next run completes and files each task once.
        again = _child(10**9, what, work / "config.toml", [str(work / "new.jsonl")] * bool(extra))
        assert again.returncode == 0, again.stderr
        _check(db)
        shutil.rmtree(work)
    assert killed > 0
