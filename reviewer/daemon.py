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
from datetime import datetime, timedelta
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from reviewer.app import App
from reviewer.config import Config
from store.base import DaemonLockedError
from store.timeutil import parse_ts, utcnow

log = logging.getLogger("reviewer.daemon")


def make_trigger(config: Config) -> BaseTrigger:
    """The schedule from ``[reviewer]``: ``cron`` when set, else ``interval``."""
    r = config.reviewer
    if r.cron:
        return CronTrigger.from_crontab(r.cron, timezone=r.timezone)
    return IntervalTrigger(seconds=max(1, int(r.interval.total_seconds())), timezone=r.timezone)


def first_run_time(config: Config, last_mark: datetime | None, now: datetime) -> datetime:
    """When the first cycle after start should run.

    Overdue (no run yet, or the next run after the last mark is already past):
    now, once. Otherwise the next scheduled time after the last mark, so a
    restart does not shift or double the schedule.
    """
    if last_mark is None:
        return now
    trigger = make_trigger(config)
    if isinstance(trigger, IntervalTrigger):
        due = last_mark + config.reviewer.interval
    else:
        nxt = trigger.get_next_fire_time(None, last_mark + timedelta(seconds=1))
        due = nxt if nxt is not None else now
    return now if due <= now else due


class Daemon:
    """Scheduler and cycle function; the API server is run around it."""

    def __init__(self, app: App):
        self.app = app
        self.scheduler = BackgroundScheduler(timezone=app.config.reviewer.timezone)
        self.cycles = 0

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

    config: Any = uvicorn.Config(
        create_app(app), host=host, port=port, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    log.info("API listening", extra={"url": f"http://{host}:{port}/"})
    # uvicorn installs its own SIGTERM/SIGINT handlers and returns after a graceful stop.
    server.run()
