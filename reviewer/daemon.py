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
"""

from __future__ import annotations

import logging
import signal
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
    first_run_time,
    make_trigger,
    review_lag,
)
from store.base import DaemonLockedError
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


class Daemon:
    """Scheduler and cycle function; the API server is run around it."""

    def __init__(self, app: App):
        self.app = app
        self.scheduler = BackgroundScheduler(timezone=app.config.reviewer.timezone)
        self.cycles = 0
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
            result = self.app.engine.review(trigger="schedule")
            self.cycles += 1
            if result.status != "ok":
                log.warning(
                    "review cycle finished with errors",
                    extra={
                        "run_id": result.run_id,
                        "status": result.status,
                        "errors": [e.get("error") for e in result.errors],
                    },
                )
        except Exception:
            log.exception("review cycle failed; the next one runs on schedule")

    def start(self) -> datetime:
        cfg = self.app.config
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
            make_trigger(cfg),
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
            },
        )
        return first

    def stop(self) -> None:
        """Stop scheduling, cancel a running cycle at its next rule, and wait for it."""
        self._watching.set()
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


def _serve_api(app: App, host: str, port: int) -> None:
    import uvicorn

    from reviewer.api import create_app

    web = create_app(app)
    web.state.scheduled = True  # /healthz then also says when cycles are not happening
    config: Any = uvicorn.Config(web, host=host, port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    log.info("API listening", extra={"url": f"http://{host}:{port}/"})
    # uvicorn installs its own SIGTERM/SIGINT handlers and returns after a graceful stop.
    server.run()
