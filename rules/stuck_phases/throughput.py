"""stuck-phases: how many tasks a phase usually finishes in a window at this time of the week.

A phase's outflow is counted per hour of the week (0-167, UTC) over its history,
in SQL. The rate of an hour of the day (over all days) is shrunk toward the
phase's overall hourly rate, ``(count + DAY_PRIOR × overall) / (hours seen +
DAY_PRIOR)``, and the rate of an hour of the week toward its hour of the day,
with ``WEEK_PRIOR``: a few weeks of history tell nights from days quickly and
weekdays from weekends as the weeks add up, and one busy or idle week does not
set the expectation alone. The expected outflow of a
window is the sum of its hours' rates; the chance of the observed outflow or
less is the Poisson tail ``P(X ≤ observed | expected)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from store import BacklogView
from store.timeutil import parse_ts

# How many hours of the broader rate a bucket's own count is mixed with.
DAY_PRIOR = 2.0
WEEK_PRIOR = 1.0
_HOUR = 3600.0
_WEEK = 168


@dataclass(frozen=True)
class Throughput:
    """The expected outflow of a window, what it rests on, and the chance of so little."""

    expected: float
    observed: int
    chance: float
    history_hours: float
    history_outflow: int
    hourly_rate: float
    window: timedelta


def _hours(start: datetime, end: datetime) -> dict[int, float]:
    """How many hours (fractions at the ends) of each hour-of-week bucket ``[start, end)`` holds."""
    out: dict[int, float] = {}
    t = start.timestamp()
    stop = end.timestamp()
    while t < stop:
        index = int(t // _HOUR)
        upto = min(stop, (index + 1) * _HOUR)
        bucket = index % _WEEK
        out[bucket] = out.get(bucket, 0.0) + (upto - t) / _HOUR
        t = upto
    return out


def expected_outflow(
    view: BacklogView, phase: str, window: timedelta, history: timedelta, observed: int | None
) -> Throughput:
    """What ``phase`` usually finishes in the ``window`` before now, from ``history`` before it.

    ``observed`` is the outflow in the window; None counts it here.
    """
    now = view.now
    if observed is None:
        done, _ = view.phase_outflow_by_hour_of_week(phase, view.ts(now - window), view.now_ts)
        observed = sum(int(r["outflow"]) for r in done)
    until = now - window
    since = now - window - history
    rows, first = view.phase_outflow_by_hour_of_week(phase, view.ts(since), view.ts(until))
    if first is not None:
        since = max(since, parse_ts(first))
    seen = _hours(since, until) if since < until else {}
    counts = {int(r["hour_of_week"]): int(r["outflow"]) for r in rows}
    total_hours = sum(seen.values())
    total = sum(counts.values())
    overall = total / total_hours if total_hours > 0 else 0.0
    day_counts = [sum(counts.get(h + 24 * d, 0) for d in range(7)) for h in range(24)]
    day_seen = [sum(seen.get(h + 24 * d, 0.0) for d in range(7)) for h in range(24)]
    expected = 0.0
    for bucket, share in _hours(until, now).items():
        h = bucket % 24
        by_day = (day_counts[h] + DAY_PRIOR * overall) / (day_seen[h] + DAY_PRIOR)
        own, hours = counts.get(bucket, 0), seen.get(bucket, 0.0)
        expected += share * (own + WEEK_PRIOR * by_day) / (hours + WEEK_PRIOR)
    from scipy.stats import poisson  # here, not at the top: see rules/__init__.py

    chance = float(poisson.cdf(observed, expected)) if expected > 0 else 1.0
    return Throughput(expected, observed, chance, total_hours, total, overall, window)
