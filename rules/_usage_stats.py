"""Robust statistics and hysteresis for usage-spikes (pure helpers, no store access)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from scipy.stats import median_abs_deviation

from reviewer.timeutil import fmt_ts, parse_ts

# The spread of a reference never counts as less than this share of its median:
# when every peer used exactly the same amount the MAD is zero, and a task one
# token over would otherwise score infinity.
SCALE_FLOOR = 0.1

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Reference:
    """What is normal: the median of a sample and its robust spread (1.4826 × MAD)."""

    median: float
    scale: float
    samples: int

    def score(self, value: float) -> float:
        """How many robust standard deviations ``value`` lies above the median."""
        if self.scale <= 0:
            return float("inf") if value > self.median else 0.0
        return (value - self.median) / self.scale

    def ratio(self, value: float) -> float:
        if self.median <= 0:
            return float("inf") if value > 0 else 1.0
        return value / self.median


def reference(values: Sequence[float]) -> Reference:
    """The robust reference of a non-empty sample."""
    arr = np.asarray(values, dtype=float)
    median = float(np.median(arr))
    mad = float(median_abs_deviation(arr, scale="normal"))
    return Reference(median=median, scale=max(mad, SCALE_FLOOR * median), samples=int(arr.size))


def widest(refs: Iterable[Reference]) -> Reference:
    """One reference as demanding as all given: the highest median and the widest spread."""
    refs = list(refs)
    return Reference(
        median=max(r.median for r in refs),
        scale=max(r.scale for r in refs),
        samples=min(r.samples for r in refs),
    )


@dataclass(frozen=True)
class Thresholds:
    """When a value counts as far above its reference: all three must hold."""

    score: float
    ratio: float
    excess: float  # absolute amount above the median

    def exceeded(self, value: float, ref: Reference) -> bool:
        return (
            value - ref.median >= self.excess
            and ref.ratio(value) >= self.ratio
            and ref.score(value) >= self.score
        )

    def cut(self, ref: Reference) -> float:
        """The smallest value that could be exceeded (for filtering in SQL)."""
        return max(
            ref.median + self.excess, ref.median * self.ratio, ref.median + self.score * ref.scale
        )


def open_since(flags: Sequence[bool], open_after: int, close_after: int) -> int | None:
    """Where the episode still open at the end of ``flags`` began, or None if none is open.

    An episode opens once ``open_after`` flags in a row are set and closes once
    ``close_after`` in a row are clear, so one odd hour neither opens nor closes
    one, and replaying the same flags always gives the same answer.
    """
    is_open = False
    start: int | None = None
    run = calm = 0
    for i, flag in enumerate(flags):
        if flag:
            run, calm = run + 1, 0
            if not is_open and run >= open_after:
                is_open, start = True, i - run + 1
        else:
            run = 0
            if is_open:
                calm += 1
                if calm >= close_after:
                    is_open, start, calm = False, None, 0
    return start if is_open else None


class HourlySeries:
    """One scope's hourly totals of one measure, with gaps read as zero usage.

    An hour before the scope first reported the measure is not history; an hour
    with tasks none of which reported it is unknown; an hour with no tasks at
    all is a real zero.
    """

    def __init__(self) -> None:
        self._sums: dict[datetime, float | None] = {}
        self.first: datetime | None = None

    def add(self, hour: str, total: float | None, reported: int) -> None:
        at = parse_ts(hour)
        self._sums[at] = total if reported else None
        if reported and (self.first is None or at < self.first):
            self.first = at

    def at(self, hour: datetime) -> float | None:
        if self.first is None or hour < self.first:
            return None
        return self._sums.get(hour, 0.0)

    def baseline(
        self, hour: datetime, days: int, weeks: int, min_days: int, min_weeks: int
    ) -> Reference | None:
        """What is normal for ``hour``: the same hour (±1, for jitter) on earlier days.

        With ``min_weeks`` of history the median comes from the same hour of the
        week instead, so a weekday peak is not judged against quiet weekends;
        the spread is always the wider of the two, to stay cautious.
        """
        daily = self._refs(hour, DAY, days, min_days)
        if daily is None:
            return None
        weekly = self._refs(hour, WEEK, weeks, min_weeks)
        if weekly is None:
            return daily
        return Reference(
            median=weekly.median, scale=max(weekly.scale, daily.scale), samples=daily.samples
        )

    def _refs(self, hour: datetime, step: timedelta, count: int, need: int) -> Reference | None:
        refs = []
        for offset in (-1, 0, 1):
            values = [
                v
                for k in range(1, count + 1)
                if (v := self.at(hour + offset * HOUR - k * step)) is not None
            ]
            if len(values) < need:
                return None
            refs.append(reference(values))
        return widest(refs)


def hour_label(hour: datetime) -> str:
    return fmt_ts(hour)[:13] + ":00Z"
