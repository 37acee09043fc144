"""Robust statistics and hysteresis for usage-spikes (pure helpers, no store access)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from scipy.stats import median_abs_deviation, norm

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
    all is a real zero. Baselines for many hours are computed at once, in numpy.
    """

    def __init__(self, start: datetime, hours: int) -> None:
        self.start = start
        self._values = np.zeros(hours)
        self._unknown = np.zeros(hours, dtype=bool)
        self._first = hours

    def index(self, hour: datetime) -> int:
        return int((hour - self.start) // HOUR)

    def add(self, hour: str, total: float | None, reported: int) -> None:
        i = self.index(parse_ts(hour))
        if not 0 <= i < self._values.size:
            return
        if reported:
            self._values[i] = total or 0.0
            self._first = min(self._first, i)
        else:
            self._unknown[i] = True

    def values(self) -> np.ndarray:
        """The series with NaN where there is no history or the measure is unknown."""
        out = self._values.copy()
        out[self._unknown] = np.nan
        out[: self._first] = np.nan
        return out

    def baselines(
        self, idx: np.ndarray, days: int, weeks: int, min_days: int, min_weeks: int
    ) -> list[Reference | None]:
        """What is normal for each hour in ``idx``: the same hour (±1, for jitter) on earlier days.

        With ``min_weeks`` of history the same hour of the week is used instead,
        so a weekday peak is not judged against quiet weekends. None where the
        history is too short.
        """
        values = self.values()
        daily = _lagged(values, idx, 24, days, min_days)
        weekly = _lagged(values, idx, 168, weeks, min_weeks)
        out: list[Reference | None] = []
        for d, w in zip(daily, weekly, strict=True):
            ref = w if w is not None and d is not None else d
            out.append(ref)
        return out


def _lagged(
    values: np.ndarray, idx: np.ndarray, step: int, count: int, need: int
) -> list[Reference | None]:
    """Per hour, the widest reference over offsets −1, 0, +1 of ``count`` earlier lags."""
    if count < 1:
        return [None] * len(idx)
    lags = step * np.arange(1, count + 1)
    medians, scales, samples = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows are expected
        for offset in (-1, 0, 1):
            at = idx[:, None] + offset - lags[None, :]
            sample = np.where(at >= 0, values[np.clip(at, 0, None)], np.nan)
            median = np.nanmedian(sample, axis=1)
            # 1.4826 × MAD, as scipy.stats.median_abs_deviation(scale="normal"),
            # vectorised over hours with gaps (NaN) left out.
            mad = _NORMAL * np.nanmedian(np.abs(sample - median[:, None]), axis=1)
            n = np.sum(~np.isnan(sample), axis=1)
            medians.append(np.where(n >= need, median, np.nan))
            scales.append(mad)
            samples.append(n)
    median = np.max(medians, axis=0)  # NaN when any offset lacks history
    scale = np.max(scales, axis=0)
    n = np.min(samples, axis=0)
    return [
        None
        if np.isnan(m)
        else Reference(median=float(m), scale=max(float(s), SCALE_FLOOR * float(m)), samples=int(k))
        for m, s, k in zip(median, scale, n, strict=True)
    ]


_NORMAL = 1.0 / float(norm.ppf(0.75))


def hour_label(hour: datetime) -> str:
    return fmt_ts(hour)[:13] + ":00Z"
