"""The daemon: schedule, catch-up, one per store, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import rules
from reviewer.app import App
from reviewer.daemon import Daemon, first_run_time, make_trigger
from rules import Finding
from rules.contract import RuleOptions
from store.timeutil import parse_ts
from tests.support import make_config

NOW = parse_ts("2026-03-10T12:07:00Z")


def test_first_run_is_now_when_never_run_or_overdue() -> None:
    cfg = make_config({"reviewer": {"interval": "15m"}})
    assert first_run_time(cfg, None, NOW) == NOW
    assert first_run_time(cfg, NOW - timedelta(hours=5), NOW) == NOW  # down 5h: once, now


def test_first_run_keeps_the_schedule_after_a_quick_restart() -> None:
    cfg = make_config({"reviewer": {"interval": "15m"}})
    assert first_run_time(cfg, NOW - timedelta(minutes=5), NOW) == NOW + timedelta(minutes=10)


def test_cron_schedule_catch_up() -> None:
    cfg = make_config({"reviewer": {"cron": "0 * * * *"}})
    assert make_trigger(cfg).__class__.__name__ == "WallClockCron"  # a CronTrigger, DST-safe
    # Last run 11:00; 12:00 was missed while down → run now.
    assert first_run_time(cfg, parse_ts("2026-03-10T11:00:00Z"), NOW) == NOW
    # Last run 12:00 → next 13:00.
    assert first_run_time(cfg, parse_ts("2026-03-10T12:00:00Z"), NOW) == parse_ts(
        "2026-03-10T13:00:00Z"
    )


def test_bad_cron_is_a_config_error() -> None:
    from reviewer.config import ConfigError

    with pytest.raises(ConfigError, match="cron must have five fields"):
        make_config({"reviewer": {"cron": "every hour"}})


class _SlowOptions(RuleOptions):
    pass


def test_stop_cancels_the_running_cycle_at_the_next_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = threading.Event()
    ran: list[str] = []

    def slow(options: Any, view: Any) -> Iterator[Finding]:
        started.set()
        time.sleep(1.0)
        ran.append("slow")
        return iter(())

    monkeypatch.setitem(
        rules.REGISTRY,
        "slow",
        types.SimpleNamespace(ID="slow", Options=_SlowOptions, DEFAULTS={}, check=slow),
    )
    cfg = make_config({"reviewer": {"store": f"sqlite:///{tmp_path / 'p.db'}", "interval": "1h"}})
    assert [r.id for r in cfg.enabled_rules()][-1] == "slow"  # the last rule: none after it
    app = App.from_config(cfg)
    daemon = Daemon(app)
    daemon.start()  # never ran → runs at once
    assert started.wait(10)
    daemon.stop()
    runs = app.state.runs()
    stored = app.store.query("SELECT COUNT(*) AS n FROM reviewer_findings")[0]["n"]
    app.close()
    assert ran == ["slow"]  # the rule it was in finished; the cycle stopped after it
    assert [r.status for r in runs] == ["cancelled"]
    assert runs[0].finished_at is not None
    assert stored == 0  # nothing of a cancelled cycle is saved


def _daemon(cfg: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reviewer", "--config", str(cfg), "run", "--no-api"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
    )


def _wait_for_run(db: Path, timeout: float = 30) -> None:
    import sqlite3

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            conn = sqlite3.connect(db)
            try:
                n = conn.execute(
                    "SELECT COUNT(*) FROM reviewer_runs WHERE status != 'running'"
                ).fetchone()[0]
            except sqlite3.OperationalError:
                n = 0
            finally:
                conn.close()
            if n:
                return
        time.sleep(0.2)
    raise AssertionError("the daemon never finished a review cycle")


@pytest.mark.slow
def test_two_daemons_on_one_store_cannot_both_run_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[reviewer]\nstore = "sqlite:///pipeline.db"\ninterval = "1h"\n')
    first = _daemon(cfg)
    try:
        _wait_for_run(tmp_path / "pipeline.db")
        second = _daemon(cfg)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 1
        assert "another reviewer daemon" in err and "is already running on" in err
        assert first.poll() is None  # the first one is unharmed
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        # Off a terminal the logs are JSON lines.
        import json

        lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert any(line["msg"] == "stopped" for line in lines)
        # The lock is gone with the first daemon: a new one may start.
        third = _daemon(cfg)
        assert third.stderr is not None
        for line in third.stderr:  # wait until it holds the lock and has scheduled
            if "scheduler started" in line:
                break
        assert third.poll() is None
        third.send_signal(signal.SIGINT)
        third.communicate(timeout=60)
        assert third.returncode == 0
    finally:
        for p in (first,):
            if p.poll() is None:
                p.kill()


@pytest.mark.slow
def test_sigterm_stops_a_slow_cycle_between_rules(tmp_path: Path) -> None:
    """A real daemon whose every rule takes 3 s stops within one rule of SIGTERM."""
    import sqlite3

    db = tmp_path / "pipeline.db"
    cfg = tmp_path / "config.toml"
    cfg.write_text('[reviewer]\nstore = "sqlite:///pipeline.db"\ninterval = "1h"\n')
    daemon = _daemon(cfg, REVIEWER_PAUSEPOINT="cycle.step:3")
    try:
        assert daemon.stderr is not None
        for line in daemon.stderr:  # the first cycle starts at once (never ran)
            if "scheduler started" in line:
                break
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until the cycle's run is recorded
            time.sleep(0.2)
            try:
                conn = sqlite3.connect(db)
                running = conn.execute(
                    "SELECT COUNT(*) FROM reviewer_runs WHERE status = 'running'"
                ).fetchone()[0]
                conn.close()
            except sqlite3.OperationalError:
                continue
            if running:
                break
        time.sleep(1)
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert daemon.returncode == 0, err
    # It stopped at a rule boundary, not after the whole cycle (six rules, 3 s each).
    assert "review cycle 1 cancelled before rule " in err, err
    conn = sqlite3.connect(db)
    runs = conn.execute("SELECT status, finished_at FROM reviewer_runs").fetchall()
    findings = conn.execute("SELECT COUNT(*) FROM reviewer_findings").fetchone()[0]
    conn.close()
    assert [r[0] for r in runs] == ["cancelled"] and runs[0][1] is not None
    assert findings == 0
