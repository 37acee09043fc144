"""Replicas on PostgreSQL: many daemons on one store, one leader per scheduled cycle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import rules
from reviewer import daemon as daemon_module
from reviewer.app import App
from reviewer.daemon import Daemon, current_tick
from rules import Finding, RuleOptions
from store import open_store
from store.base import Store
from store.postgres import PostgresStore
from tests.pg import fresh_schema_url
from tests.support import make_config, task_rows

pytestmark = pytest.mark.postgres

AT = datetime(2026, 3, 10, 12, 0, 20, tzinfo=UTC)  # 20 s into the tick of 12:00:00


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema_url("reviewer_replicas") as u:
        yield u


def pg(url: str) -> PostgresStore:
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    return store


def stale_tasks(store: Store, n: int, now: datetime) -> None:
    created = (now - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    store.upsert_tasks(
        task_rows(
            [{"id": f"old-{i}", "title": f"Old task {i}", "created_at": created} for i in range(n)]
        )
    )


def replica_config(url: str, keep: tuple[str, ...] = ("stale-queue",), **reviewer: Any) -> Any:
    others = {r: {"enabled": False} for r in rules.REGISTRY if r not in keep}
    return make_config({"reviewer": {"store": url, "interval": "15m", **reviewer}, "rules": others})


# -- the lease ----------------------------------------------------------------------
def test_one_lease_per_tick(url: str) -> None:
    a, b = pg(url), pg(url)
    try:
        held = a.lead_cycle("2026-03-10T12:00:00Z")
        assert held is not None and held.alive()
        assert b.lead_cycle("2026-03-10T12:00:00Z") is None
        assert b.cycle_is_led("2026-03-10T12:00:00Z")
        other = b.lead_cycle("2026-03-10T12:15:00Z")  # another tick is free
        assert other is not None
        other.release()
        held.release()
        assert not b.cycle_is_led("2026-03-10T12:00:00Z")
        again = b.lead_cycle("2026-03-10T12:00:00Z")
        assert again is not None
        again.release()
    finally:
        a.close()
        b.close()


def test_a_lost_lease_connection_is_seen_and_frees_the_tick(url: str) -> None:
    a, b = pg(url), pg(url)
    try:
        held = a.lead_cycle("T1")
        assert held is not None
        assert a._lease_conn is not None
        pid = a._lease_conn.info.backend_pid
        b.query("SELECT pg_terminate_backend(:p)", {"p": pid})
        assert not held.alive()
        took = b.lead_cycle("T1")  # the server dropped the lock with the connection
        assert took is not None
        took.release()
        held.release()  # harmless on a dead connection
        fresh = a.lead_cycle("T2")  # a new lease connection
        assert fresh is not None and fresh.alive()
        fresh.release()
    finally:
        a.close()
        b.close()


def test_ticks_are_a_grid_every_replica_shares() -> None:
    cfg = make_config({"reviewer": {"interval": "15m"}})
    assert current_tick(cfg, AT) == "2026-03-10T12:00:00Z"
    # A replica whose clock is a second ahead of the scheduler's still lands on the tick.
    assert current_tick(cfg, AT.replace(hour=11, minute=59, second=59)) == "2026-03-10T12:00:00Z"
    cron = make_config({"reviewer": {"cron": "*/5 * * * *"}})
    assert current_tick(cron, AT.replace(minute=7)) == "2026-03-10T12:05:00Z"


# -- daemons in one process ----------------------------------------------------------
def test_two_replicas_run_a_tick_once(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_module, "utcnow", lambda: AT)
    cfg = replica_config(url)
    one, two = App.from_config(cfg, clock=lambda: AT), App.from_config(cfg, clock=lambda: AT)
    stale_tasks(one.store, 3, AT)
    d1, d2 = Daemon(one), Daemon(two)
    try:
        assert d1.replicated and d2.replicated
        # While the first holds the tick's lease, the second stands by.
        lease = one.store.lead_cycle("2026-03-10T12:00:00Z")  # type: ignore[attr-defined]
        d2.cycle()
        assert (d2.standby, d2.cycles) == (1, 0)
        lease.release()
        d2.cycle()  # now it leads
        d1.cycle()  # and the first finds the tick done
        assert (d2.cycles, d1.cycles, d1.standby) == (1, 0, 1)
        runs = one.store.query("SELECT tick, runner, status FROM reviewer_runs")
        assert runs == [{"tick": "2026-03-10T12:00:00Z", "runner": d2.runner, "status": "ok"}]
        subjects = one.store.query("SELECT subject FROM reviewer_proposals ORDER BY subject")
        assert [r["subject"] for r in subjects] == ["old-0", "old-1", "old-2"]
    finally:
        one.close()
        two.close()


class _SlowOptions(RuleOptions):
    pass


def test_a_lost_lease_stops_the_cycle(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_module, "utcnow", lambda: AT)
    monkeypatch.setattr(daemon_module, "LEASE_CHECK_S", 0.05)
    killer = pg(url)
    after: list[str] = []

    def cut_the_lease(options: Any, view: Any) -> Iterator[Finding]:
        conn = app.store._lease_conn  # type: ignore[attr-defined]
        killer.query("SELECT pg_terminate_backend(:p)", {"p": conn.info.backend_pid})
        time.sleep(0.5)  # the watcher sees it meanwhile
        return iter(())

    def later(options: Any, view: Any) -> Iterator[Finding]:
        after.append("ran")
        return iter(())

    for name, check in (("cut", cut_the_lease), ("later", later)):
        monkeypatch.setitem(
            rules.REGISTRY,
            name,
            types.SimpleNamespace(ID=name, Options=_SlowOptions, DEFAULTS={}, check=check),
        )
    app = App.from_config(replica_config(url, keep=("cut", "later")), clock=lambda: AT)
    daemon = Daemon(app)
    try:
        daemon.cycle()
        (run,) = app.state.runs()
        assert run.status == "cancelled"
        assert any(e["stage"] == "lock" and "lost the connection" in e["error"] for e in run.errors)
        assert after == []  # the rule after the loss did not run
        assert not app.engine.cancel.is_set()  # the next cycle is not cancelled
    finally:
        app.close()
        killer.close()


def test_runs_of_a_dead_replica_are_reaped(url: str) -> None:
    cfg = replica_config(url)
    app, other = App.from_config(cfg), pg(url)
    try:
        with app.store.transaction():
            dead = app.state.start_run("2026-03-10T11:45:01Z", "x", "schedule", tick="T-dead")
            alive = app.state.start_run("2026-03-10T12:00:01Z", "x", "schedule", tick="T-alive")
        lease = other.lead_cycle("T-alive")  # a live replica still runs this one
        assert lease is not None
        assert Daemon(app).reap_dead_runs() == 1
        status = {r.id: r.status for r in app.state.runs()}
        assert status == {dead: "interrupted", alive: "running"}
        lease.release()
    finally:
        app.close()
        other.close()


# -- three replica processes ----------------------------------------------------------
def _replica(cfg: Path, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "REVIEWER_PAUSEPOINT": "cycle.step:0.4"}
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = str(root)
    return subprocess.Popen(
        [sys.executable, "-m", "reviewer", "--config", str(cfg), "run", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_three_replicas_run_every_tick_once_and_survive_a_killed_leader(
    url: str, tmp_path: Path
) -> None:
    import httpx

    seed = pg(url)
    now = datetime.now(UTC)
    stale_tasks(seed, 4, now)
    others = "\n".join(
        f"[rules.{r}]\nenabled = false" for r in rules.REGISTRY if r != "stale-queue"
    )
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[reviewer]\nstore = "{url}"\ninterval = "10s"\n\n'
        f'[rules.stale-queue]\napproval = "auto"\n\n{others}\n'
    )
    ports = [_free_port() for _ in range(3)]
    replicas = {p.pid: p for p in (_replica(cfg, port) for port in ports)}
    stderr: dict[int, str] = {}
    try:
        # A few ticks go by, every replica up and serving the API meanwhile.
        _wait(
            "three finished ticks",
            lambda: (
                seed.query("SELECT COUNT(*) AS n FROM reviewer_runs WHERE status = 'ok'")[0]["n"]
                >= 3
            ),
            60,
        )
        for port in ports:
            assert httpx.get(f"http://127.0.0.1:{port}/api/runs", timeout=10).status_code == 200
        # Kill the leader of the next cycle in the middle of it.
        done = {r["tick"] for r in seed.query("SELECT tick FROM reviewer_runs")}
        running = _wait(
            "a cycle under way",
            lambda: (
                seed.query(
                    "SELECT id, tick, runner FROM reviewer_runs WHERE status = 'running'"
                    " AND tick IS NOT NULL"
                )
                or None
            ),
            30,
        )[0]
        assert running["tick"] not in done
        leader = int(running["runner"].rsplit(":", 1)[1])
        replicas[leader].send_signal(signal.SIGKILL)
        replicas[leader].wait(10)
        # Another replica takes the next tick, and reaps the killed run.
        nxt = _wait(
            "the next tick run by another replica",
            lambda: seed.query(
                "SELECT tick, runner FROM reviewer_runs WHERE tick > :t AND status = 'ok'",
                {"t": running["tick"]},
            ),
            40,
        )[0]
        assert int(nxt["runner"].rsplit(":", 1)[1]) != leader
        _wait(
            "the killed run marked interrupted",
            lambda: (
                seed.query("SELECT status FROM reviewer_runs WHERE id = :i", {"i": running["id"]})[
                    0
                ]["status"]
                == "interrupted"
            ),
            30,
        )
    finally:
        for p in replicas.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for pid, p in replicas.items():
            try:
                _, stderr[pid] = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                _, stderr[pid] = p.communicate()
    try:
        runs = seed.query("SELECT id, tick, runner, status FROM reviewer_runs ORDER BY tick")
        ticks = [r["tick"] for r in runs]
        # Every tick ran exactly once: unique, and none missing between the first and last.
        assert len(ticks) == len(set(ticks)) and None not in ticks
        first, last = (datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ") for t in (ticks[0], ticks[-1]))
        expected = int((last - first).total_seconds() // 10) + 1
        assert len(ticks) == expected, ticks
        assert {r["status"] for r in runs} <= {"ok", "interrupted", "cancelled"}
        assert [r["status"] for r in runs].count("interrupted") == 1
        assert len({r["runner"] for r in runs}) >= 2  # the cycles were shared out
        # Every expected proposal exists once, and its task was filed once.
        props = seed.query("SELECT subject, COUNT(*) AS n FROM reviewer_proposals GROUP BY subject")
        assert sorted((r["subject"], r["n"]) for r in props) == [(f"old-{i}", 1) for i in range(4)]
        filed = seed.query("SELECT COUNT(*) AS n FROM tasks WHERE source = 'reviewer'")[0]["n"]
        assert filed == 4
        logs = "".join(stderr.values())
        assert "standing by" in logs
    finally:
        seed.close()


def test_no_replicas_on_sqlite(tmp_path: Path) -> None:
    app = App.from_config(make_config({"reviewer": {"store": f"sqlite:///{tmp_path / 'p.db'}"}}))
    try:
        assert not Daemon(app).replicated
    finally:
        app.close()
