"""The review schedule: its trigger, when the first cycle runs, and whether cycles lag.

Shared by the daemon (which runs the schedule) and the API's ``/healthz`` (which
says when cycles are not happening), so neither imports the other.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from reviewer.config import Config
from store.timeutil import fmt_ts

log = logging.getLogger("reviewer.daemon")

# A wall-clock jump larger than this (against the monotonic clock) is a step.
CLOCK_TOLERANCE = timedelta(seconds=60)
# Replicas' interval grids start here, so every replica has the same ticks.
GRID_ORIGIN = datetime(1970, 1, 1, tzinfo=UTC)


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


def make_trigger(config: Config, *, grid: bool = False) -> BaseTrigger:
    """The schedule from ``[reviewer]``: ``cron`` when set, else ``interval``.

    ``grid``: an interval counted from the Unix epoch, the same for every replica."""
    r = config.reviewer
    if r.cron:
        return WallClockCron.from_crontab(r.cron, timezone=r.timezone)
    seconds = max(1, int(r.interval.total_seconds()))
    if grid:
        return IntervalTrigger(seconds=seconds, start_date=GRID_ORIGIN, timezone=r.timezone)
    return IntervalTrigger(seconds=seconds, timezone=r.timezone)


def current_tick(config: Config, now: datetime) -> str:
    """The scheduled instant a cycle starting at ``now`` belongs to: the latest at or before it.

    A replica whose clock runs a little ahead of the scheduler's may start just
    before the instant; two seconds of tolerance put it on the right tick.
    """
    r = config.reviewer
    probe = now + timedelta(seconds=2)
    if not r.cron:
        step = max(1, int(r.interval.total_seconds()))
        k = int((probe - GRID_ORIGIN).total_seconds()) // step
        return fmt_ts(GRID_ORIGIN + timedelta(seconds=k * step))
    trigger = make_trigger(config)
    # A cron run starts within its misfire grace of its time: look back that far.
    back = timedelta(minutes=r.misfire_grace_minutes) + timedelta(minutes=2)
    fire = trigger.get_next_fire_time(None, probe - back)
    latest = None
    while fire is not None and fire <= probe:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    if latest is None:  # not on the schedule (a first run at start): this minute
        return fmt_ts(now.replace(second=0, microsecond=0))
    return fmt_ts(latest)


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
