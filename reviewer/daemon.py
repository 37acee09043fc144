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
from datetime import UTC, datetime, timedelta
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

# A wall-clock jump larger than this (against the monotonic clock) is a step.
CLOCK_TOLERANCE = timedelta(seconds=60)
CLOCK_CHECK_S = 5.0


class WallClockCron(CronTrigger):
    """APScheduler 3's CronTrigger, once per wall-clock time across DST changes.

    A cron schedule means wall-clock times in ``[reviewer] timezone``. On the
    fall-back night 02:30 happens twice (CEST, then CET); APScheduler 3.11 fires
    both, and asked again after the second it answers the second again (a time
    not after ``now``). Here a wall time equal to the previous fire's is the same
    occurrence and is skipped, and an answer not after ``now`` is asked again an
    hour on. On the spring-forward night a missing time (02:30) fires once at the
    first instant after the gap (03:30 CEST), as APScheduler does.
    """

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        # Compare in UTC: aware datetimes of one zone compare by wall time, fold ignored.
        now_utc = now.astimezone(UTC)
        prev_wall = (
            previous_fire_time.astimezone(self.timezone).replace(tzinfo=None, fold=0)
            if previous_fire_time is not None
            else None
        )
        probe, since = now, previous_fire_time
        step = timedelta(minutes=1)
        for _ in range(48):
            nxt = super().get_next_fire_time(since, probe)
            if nxt is None:
                return None
            nxt_utc = nxt.astimezone(UTC)
            wall = nxt.astimezone(self.timezone).replace(tzinfo=None, fold=0)
            if nxt_utc > now_utc and wall != prev_wall:
                return nxt
            # Ask again from later on (APScheduler starts from previous + 1 µs when
            # given a previous fire time, so leave it out), further each time.
            probe, since = max(nxt_utc, now_utc) + step, None
            step += timedelta(hours=1)
        return None


def make_trigger(config: Config) -> BaseTrigger:
    """The schedule from ``[reviewer]``: ``cron`` when set, else ``interval``."""
    r = config.reviewer
    if r.cron:
        return WallClockCron.from_crontab(r.cron, timezone=r.timezone)
    return IntervalTrigger(seconds=max(1, int(r.interval.total_seconds())), timezone=r.timezone)


def first_run_time(config: Config, last_mark: datetime | None, now: datetime) -> datetime:
    """When the first cycle after start should run.

    Overdue (no run yet, or the next run after the last mark is already past):
    now, once. Otherwise the next scheduled time after the last mark, so a
    restart does not shift or double the schedule.
    """
    if last_mark is None:
        return now
    if last_mark > now + CLOCK_TOLERANCE:
        # The clock stepped back since the last run: waiting for last + interval
        # could mean hours with no review. Review now.
        log.warning(
            "the clock is behind the last run's start: it stepped back; reviewing now",
            extra={"last_run_started": last_mark.isoformat(), "now": now.isoformat()},
        )
        return now
    trigger = make_trigger(config)
    if isinstance(trigger, IntervalTrigger):
        due = last_mark + config.reviewer.interval
    else:
        nxt = trigger.get_next_fire_time(None, last_mark + timedelta(seconds=1))
        due = nxt if nxt is not None else now
    return now if due <= now else due


def review_lag(config: Config, last_started: datetime | None, now: datetime) -> str | None:
    """Why a daemon on this schedule is not reviewing, or None when it is on time.

    A run whose start lies ahead of the clock means the clock stepped back; a
    run due more than the misfire grace (at least a minute) ago means cycles
    are not happening."""
    if last_started is None:
        return None
    if last_started > now + CLOCK_TOLERANCE:
        return (
            f"the last review started at {last_started.isoformat()}, after now: "
            "the clock stepped back"
        )
    trigger = make_trigger(config)
    if isinstance(trigger, IntervalTrigger):
        due: datetime | None = last_started + config.reviewer.interval
    else:
        due = trigger.get_next_fire_time(None, last_started + timedelta(seconds=1))
    grace = max(timedelta(minutes=config.reviewer.misfire_grace_minutes), timedelta(minutes=1))
    if due is not None and now > due + grace:
        return f"no review since {last_started.isoformat()}; one was due at {due.isoformat()}"
    return None


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
