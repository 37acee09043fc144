"""The daemon: scheduled review cycles plus the HTTP API, one per store.

APScheduler 3 runs the cycle on the configured interval or cron schedule with
``coalesce`` (a backlog of missed runs collapses into one), ``max_instances=1``
(a slow cycle is never overlapped by the next) and a misfire grace. After
downtime the daemon does not replay missed runs: it looks at its own last-run
mark in the store and, if a run is overdue, runs once at start.

SIGTERM and SIGINT stop it cleanly: the API stops taking requests, a running
cycle stops at its next rule boundary (recorded as ``cancelled``, none of its
findings written), then the store's daemon lock is released. So a stop takes
at most one rule's time, well within systemd's ``TimeoutStopSec``.

On SQLite one daemon reviews a store (a file lock). On PostgreSQL any number
of daemons (replicas) may: the schedule is on a grid all of them share (an
interval counts from the Unix epoch; a cron time is a wall-clock time), each
scheduled instant is a *tick*, and at each tick every replica asks the store
for the tick's lease (``lead_cycle``). The one that gets it runs the cycle,
recording the tick in ``reviewer_runs`` (unique there: a late replica finds it
and skips); the others log that they stand by and go on serving the API. While
it runs, the leader checks its lease connection; if it is lost, the cycle
stops at the next rule, recorded ``cancelled``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from datetime import datetime
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from reviewer.app import App
from reviewer.config import Config
from reviewer.schedule import (
    CLOCK_TOLERANCE,
    WallClockCron,
    current_tick,
    first_run_time,
    make_trigger,
    review_lag,
)
from store.base import CycleLease, DaemonLockedError, SupportsReplicas
from store.timeutil import parse_ts, utcnow

__all__ = [
    "CLOCK_TOLERANCE",
    "Daemon",
    "WallClockCron",
    "first_run_time",
    "make_trigger",
    "review_lag",
    "run_daemon",
]

log = logging.getLogger("reviewer.daemon")

CLOCK_CHECK_S = 5.0
# How often a leading replica checks that its cycle lock's connection is alive.
LEASE_CHECK_S = 1.0
LOST_LEASE = "lost the connection that holds this cycle's lock (another replica may lead now)"


class Daemon:
    """Scheduler and cycle function; the API server is run around it."""

    def __init__(self, app: App):
        self.app = app
        self.scheduler = BackgroundScheduler(timezone=app.config.reviewer.timezone)
        self.cycles = 0
        self.standby = 0  # ticks another replica ran
        # PostgreSQL: replicas share the store, one leads each tick.
        self.replicated = isinstance(app.store, SupportsReplicas)
        self.runner = f"{socket.gethostname()}:{os.getpid()}"
        self._stopping = False
        self._clock_ref = (utcnow(), time.monotonic())
        self._watching = threading.Event()

    def check_clock(self, wall: datetime | None = None, mono: float | None = None) -> float:
        """Compare the wall clock with the monotonic one; returns the step in seconds.

        APScheduler waits on wall-clock times, so after a backward step the next
        cycle would wait for the old time to come round again: the cycle is
        rescheduled to run now (and the step logged). Until the clock passes the
        last recorded review again, the engine runs such cycles read-only (a note
        and a log line), so an instant of the past never rewrites the present. A
        forward step needs nothing: missed runs are coalesced into one, never replayed.
        """
        wall = wall if wall is not None else utcnow()
        mono = mono if mono is not None else time.monotonic()
        wall0, mono0 = self._clock_ref
        self._clock_ref = (wall, mono)
        step = (wall - wall0).total_seconds() - (mono - mono0)
        if step < -CLOCK_TOLERANCE.total_seconds():
            log.warning(
                "the system clock stepped back by %.0f s; the next review runs now",
                -step,
                extra={"step_seconds": step},
            )
            if self.scheduler.get_job("review") is not None:
                self.scheduler.modify_job("review", next_run_time=wall)
        elif step > CLOCK_TOLERANCE.total_seconds():
            log.warning(
                "the system clock stepped forward by %.0f s; missed reviews are not replayed",
                step,
                extra={"step_seconds": step},
            )
        return step

    def _watch_clock(self) -> None:
        while not self._watching.wait(CLOCK_CHECK_S):  # Event.wait is monotonic
            try:
                self.check_clock()
            except Exception:
                log.exception("clock check failed")

    def cycle(self) -> None:
        """One scheduled review; never raises, so one bad cycle cannot stop the next."""
        try:
            if self.replicated:
                self._lead(current_tick(self.app.config, utcnow()))
                return
            result = self.app.engine.review(trigger="schedule")
            self.cycles += 1
            self._report(result)
        except Exception:
            log.exception("review cycle failed; the next one runs on schedule")

    def _report(self, result: Any) -> None:
        if result.status != "ok":
            log.warning(
                "review cycle finished with errors",
                extra={
                    "run_id": result.run_id,
                    "status": result.status,
                    "errors": [e.get("error") for e in result.errors],
                },
            )

    def _lead(self, tick: str) -> None:
        """Run the cycle of ``tick`` if this replica gets its lease and no one ran it yet."""
        store: Any = self.app.store
        lease: CycleLease | None = store.lead_cycle(tick)
        if lease is None:
            self.standby += 1
            log.info(
                "standing by: another replica runs the cycle of %s", tick, extra={"tick": tick}
            )
            return
        try:
            done = self.app.state.run_for_tick(tick)
            if done is not None:
                self.standby += 1
                log.info(
                    "standing by: the cycle of %s already ran (run %s by %s)",
                    tick,
                    done.id,
                    done.runner,
                    extra={"tick": tick, "run_id": done.id},
                )
                return
            self.reap_dead_runs(tick)
            log.info("leading the cycle of %s", tick, extra={"tick": tick})
            lost = threading.Event()
            watching = threading.Event()
            watcher = threading.Thread(
                target=self._watch_lease, args=(lease, watching, lost), name="lease-watch"
            )
            watcher.start()
            try:
                result = self.app.engine.review(trigger="schedule", tick=tick, runner=self.runner)
            finally:
                watching.set()
                watcher.join()
            if lost.is_set():
                engine = self.app.engine
                if not self._stopping:
                    engine.cancel.clear()
                    engine.cancel_why = "the reviewer is stopping"
                if result.run_id is not None:
                    with self.app.store.transaction():
                        self.app.state.finish_run(
                            result.run_id,
                            errors=[
                                *result.errors,
                                {"rule": None, "stage": "lock", "error": LOST_LEASE},
                            ],
                        )
            self.cycles += 1
            self._report(result)
        finally:
            lease.release()

    def _watch_lease(
        self, lease: CycleLease, watching: threading.Event, lost: threading.Event
    ) -> None:
        while not watching.wait(LEASE_CHECK_S):
            if not lease.alive():
                log.error("%s; stopping the cycle of %s at its next rule", LOST_LEASE, lease.tick)
                self.app.engine.cancel_why = LOST_LEASE
                lost.set()
                self.app.engine.cancel.set()
                return

    def reap_dead_runs(self, tick: str | None = None) -> int:
        """Mark runs ``interrupted`` whose replica is gone (its tick's lease is free)."""
        store: Any = self.app.store
        reaped = 0
        for run in self.app.state.running_runs():
            if run.tick == tick:
                continue
            # A scheduled run without a tick is from a daemon before replicas: gone too.
            if run.tick is None and run.trigger != "schedule":
                continue
            if run.tick is not None and store.cycle_is_led(run.tick):
                continue
            with self.app.store.transaction():
                if self.app.state.mark_run_interrupted(run.id):
                    reaped += 1
                    log.warning(
                        "run %s (tick %s, by %s) was left running by a replica that is gone:"
                        " interrupted",
                        run.id,
                        run.tick,
                        run.runner,
                    )
        return reaped

    def start(self) -> datetime:
        cfg = self.app.config
        if self.replicated:
            # Other replicas' runs may be under way: only the dead ones are marked. The
            # current tick is run at once unless a replica has run it (``_lead``).
            self.reap_dead_runs()
            first = utcnow()
        else:
            with self.app.store.transaction():
                interrupted = self.app.state.mark_interrupted()
            if interrupted:
                log.warning(
                    "%d review run(s) left running by a stopped process: interrupted", interrupted
                )
            last = self.app.state.last_run(completed=False)
            last_mark = parse_ts(last.started_at) if last else None
            first = first_run_time(cfg, last_mark, utcnow())
        self.scheduler.add_job(
            self.cycle,
            make_trigger(cfg, grid=self.replicated),
            id="review",
            name="review cycle",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(cfg.reviewer.misfire_grace_minutes * 60)),
            next_run_time=first,
            replace_existing=True,
        )
        self.scheduler.start()
        self._clock_ref = (utcnow(), time.monotonic())
        threading.Thread(target=self._watch_clock, name="clock-watch", daemon=True).start()
        log.info(
            "scheduler started",
            extra={
                "first_run": first.isoformat(),
                "schedule": cfg.reviewer.cron or str(cfg.reviewer.interval),
                "replica": self.runner if self.replicated else None,
            },
        )
        return first

    def stop(self) -> None:
        """Stop scheduling, cancel a running cycle at its next rule, and wait for it."""
        self._watching.set()
        self._stopping = True
        self.app.engine.cancel_why = "the reviewer is stopping"
        self.app.engine.cancel.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)


def run_daemon(
    config: Config, *, host: str | None = None, port: int | None = None, api: bool = True
) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    app = App.from_config(config)
    try:
        app.store.acquire_daemon_lock()
    except DaemonLockedError as exc:
        log.error(str(exc))
        app.close()
        import click

        click.echo(f"reviewer: {exc}", err=True)
        return 1
    daemon = Daemon(app)
    # Handlers go in before the first cycle can start, so an early SIGTERM is clean too.
    stop = _stop_on_signals()
    try:
        daemon.start()
        if api:
            _serve_api(app, host or config.reviewer.api_host, port or config.reviewer.api_port)
        else:
            stop.wait()
    finally:
        log.info("stopping: a running cycle stops at its next rule")
        daemon.stop()
        app.close()
        log.info("stopped")
    return 0


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (uvicorn later installs its own handlers)."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def start_warnings(config: Config, host: str) -> list[str]:
    """What an operator must know when the API starts: changes it cannot accept,
    tokens that cannot be used, and reads open beyond this machine."""
    import ipaddress

    from reviewer.config import NAMED_TOKEN_ENV, token_env_name

    out: list[str] = []
    tokens = config.api_tokens()
    if not tokens:
        out.append(
            "no API token is configured: every change over HTTP (approve, reject, silences, "
            "ingest) is refused with 403. Set REVIEWER_API_TOKEN, or add "
            "[reviewer.tokens.<name>] tables with scopes (see the README: Tokens, scopes "
            "and the audit trail)"
        )
    usable = {t.name for t in tokens}
    for name, t in config.reviewer.tokens.items():
        if name not in usable:
            env = t.token_env or NAMED_TOKEN_ENV + token_env_name(name)
            out.append(f"token {name!r} has no value (${env} is not set): it cannot be used")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False  # a host name: it may resolve to anything
    if not loopback and not config.reviewer.reads_require_token:
        out.append(
            f"the API listens on {host}, beyond this machine, and its reads are open: anyone "
            "who reaches it sees findings, proposals and the audit log. Set [reviewer] "
            "reads_require_token = true and give readers a token with the read scope, or "
            "listen on 127.0.0.1"
        )
    return out


def _serve_api(app: App, host: str, port: int) -> None:
    import uvicorn

    from reviewer.api import create_app

    for warning in start_warnings(app.config, host):
        log.warning(warning)
    web = create_app(app)
    web.state.scheduled = True  # /healthz then also says when cycles are not happening
    config: Any = uvicorn.Config(web, host=host, port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    log.info("API listening", extra={"url": f"http://{host}:{port}/"})
    # uvicorn installs its own SIGTERM/SIGINT handlers and returns after a graceful stop.
    server.run()
