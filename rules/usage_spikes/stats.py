"""Robust statistics and hysteresis for usage-spikes (pure helpers, no store access)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from scipy.stats import gamma, median_abs_deviation, norm, poisson

from store.timeutil import fmt_ts

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


@dataclass(frozen=True)
class LogReference(Reference):
    """A robust reference on the log scale, for amounts that vary by factors.

    Token use and cost per task are multiplicative (log-normal-like, heavy right
    tail): on that scale "far above" means many times the usual, and median/MAD
    of log(x) is the standard robust spread. ``median`` stays in plain units;
    ``scale`` is the robust standard deviation of log(x).
    """

    def score(self, value: float) -> float:
        if self.median <= 0:
            return float("inf") if value > 0 else 0.0
        if value <= 0:
            return float("-inf")
        return (math.log(value) - math.log(self.median)) / self.scale

    def at_score(self, score: float) -> float:
        """The value that scores exactly ``score``."""
        return self.median * math.exp(score * self.scale)


def log_reference(values: Sequence[float]) -> LogReference:
    """The log-scale robust reference of a non-empty sample (zeros read as tiny amounts)."""
    arr = np.asarray(values, dtype=float)
    median = float(np.median(arr))
    positive = arr[arr > 0]
    if median <= 0 or positive.size == 0:
        return LogReference(median=median, scale=SCALE_FLOOR, samples=int(arr.size))
    logs = np.log(np.maximum(arr, median * 1e-3))
    mad = float(median_abs_deviation(logs, scale="normal"))
    # SCALE_FLOOR in log units: a spread never counts as less than about ±10%.
    return LogReference(median=median, scale=max(mad, SCALE_FLOOR), samples=int(arr.size))


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
    """When a value counts as far above its reference.

    The absolute ``excess`` must hold, and then either ``score`` and ``ratio``
    together, or, where set, the larger ``clear_ratio`` at the lower
    ``clear_score``: many times the usual is far enough at a smaller score, as
    long as the group's own spread does not make it common.
    """

    score: float
    ratio: float
    excess: float  # absolute amount above the median
    clear_ratio: float | None = None
    clear_score: float | None = None

    def exceeded(self, value: float, ref: Reference) -> bool:
        if value - ref.median < self.excess:
            return False
        ratio, score = ref.ratio(value), ref.score(value)
        if ratio >= self.ratio and score >= self.score:
            return True
        return (
            self.clear_ratio is not None
            and self.clear_score is not None
            and ratio >= self.clear_ratio
            and score >= self.clear_score
        )

    def cut(self, ref: Reference) -> float:
        """The smallest value that could be exceeded (for filtering in SQL)."""
        paths = [(self.score, self.ratio)]
        if self.clear_ratio is not None and self.clear_score is not None:
            paths.append((self.clear_score, self.clear_ratio))
        return min(
            max(ref.median + self.excess, ref.median * ratio, _at_score(ref, score))
            for score, ratio in paths
        )


def _at_score(ref: Reference, score: float) -> float:
    if isinstance(ref, LogReference):
        return ref.at_score(score)
    return ref.median + score * ref.scale


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


@dataclass(frozen=True)
class HourlyExpectation(Reference):
    """What one hour of a scope should hold, and how unlikely more is given its volume.

    ``median`` and ``scale`` are the usual hourly amount and its robust spread
    over the same hours of earlier days (or weeks). ``volume_score`` says how
    unlikely the hour is once the number of tasks is taken into account: the
    larger of a Poisson test of the task count against the seasonal expected
    count and a test of the usage per task against the scope's usual per-task
    amount and spread, both as normal-equivalent z. A quiet night hour where a
    few ordinary large tasks happen to meet is explained by chance; many more
    tasks, or tasks far heavier than usual, are not.
    """

    expected_tasks: float = 0.0
    tasks: int = 0
    volume_score: float = 0.0


def tail_z(log_p: float) -> float:
    """The normal-equivalent z of an upper-tail probability given as its log."""
    if log_p >= 0:
        return float("-inf")
    if log_p < -700:  # beyond float range; the asymptote is close enough there
        return math.sqrt(-2.0 * log_p)
    return float(norm.isf(math.exp(log_p)))


def volume_score(value: float, tasks: int, expected_tasks: float, mean: float, var: float) -> float:
    """How unlikely ``value`` over ``tasks`` tasks is: more tasks, or more per task."""
    if tasks <= 0:
        return float("-inf")
    if expected_tasks <= 0:
        by_count = float("inf")
    else:
        by_count = tail_z(float(poisson.logsf(tasks - 1, expected_tasks)))
    if mean <= 0:
        by_size = float("inf") if value > 0 else float("-inf")
    elif var <= 0:
        by_size = float("inf") if value > tasks * mean * (1 + SCALE_FLOOR) else float("-inf")
    else:
        # The sum of ``tasks`` usual tasks, as a gamma with the same mean and
        # variance: right-skewed like real per-task usage, exact in the mean.
        shape, scale = tasks * mean * mean / var, var / mean
        by_size = tail_z(float(gamma.logsf(value, shape, scale=scale)))
    return max(by_count, by_size)


class HourlySeries:
    """One scope's hourly totals of one measure, with gaps read as zero usage.

    An hour before the scope first reported the measure is not history; an hour
    with tasks none of which reported it is unknown; an hour with no tasks at
    all is a real zero. Baselines for many hours are computed at once, in numpy.
    """

    def __init__(
        self,
        start: datetime,
        values: np.ndarray,
        reported: np.ndarray,
        squares: np.ndarray,
        tasks: np.ndarray,
        top: np.ndarray,
    ) -> None:
        """Hourly sums from ``start``: the measure's total, how many tasks reported it,
        the sum of its squares, all tasks of the hour (reported or not), and the
        hour's largest single task."""
        self.start = start
        self._values = values
        self._tasks = reported
        self._squares = squares
        self._top = top
        self._unknown = (tasks > 0) & (reported == 0)
        seen = np.flatnonzero(reported > 0)
        self._first = int(seen[0]) if seen.size else int(values.size)

    def index(self, hour: datetime) -> int:
        return int((hour - self.start) // HOUR)

    def values(self) -> np.ndarray:
        """The series with NaN where there is no history or the measure is unknown."""
        out = self._values.copy()
        out[self._unknown] = np.nan
        out[: self._first] = np.nan
        return out

    def rest(self) -> np.ndarray:
        """The series without each hour's largest single task (NaN where ``values`` is)."""
        return self.values() - self._top

    def top(self) -> np.ndarray:
        """Each hour's largest single task."""
        return self._top

    def tasks(self) -> np.ndarray:
        """Tasks that reported the measure, per hour, NaN where ``values`` is."""
        out = self._tasks.copy()
        out[np.isnan(self.values())] = np.nan
        return out

    def per_task(self, before: int) -> tuple[float, float]:
        """Mean and variance of one task's amount over the hours before index ``before``."""
        n = float(self._tasks[:before].sum())
        if n < 2:
            return 0.0, 0.0
        mean = float(self._values[:before].sum()) / n
        var = float(self._squares[:before].sum()) / n - mean * mean
        return mean, max(var, 0.0)

    def baselines(
        self,
        idx: np.ndarray,
        days: int,
        weeks: int,
        min_days: int,
        min_weeks: int,
        level_hours: int = 0,
    ) -> list[HourlyExpectation | None]:
        """What is normal for each hour in ``idx``: the same hour (±1, for jitter) on earlier days.

        With ``min_weeks`` of history the same hour of the week is used instead,
        so a weekday peak is not judged against quiet weekends. None where the
        history is too short. The volume score is of the hour without its largest
        task (see ``rest``): one task, however large, does not make a spike.

        With ``level_hours``, a growing scope's baseline grows with it: the
        medians of earlier days lag a trend, so they are scaled by how far the
        ``level_hours`` before ``idx`` stood above their own medians (see
        ``growth``).
        """
        values, tasks, rest = self.values(), self.tasks(), self.rest()
        refs = self._references(values, tasks, idx, days, weeks, min_days, min_weeks)
        start = int(idx.min()) if idx.size else 0
        grow = 1.0
        if level_hours > 0:
            before = np.arange(max(start - level_hours, self._first), start)
            grow = growth(
                values[before],
                self._references(values, tasks, before, days, weeks, min_days, min_weeks),
            )
        mean, var = self.per_task(start)
        out: list[HourlyExpectation | None] = []
        for i, ref in zip(idx, refs, strict=True):
            if ref is None:
                out.append(None)
                continue
            median, scale = ref.median * grow, ref.scale * grow
            if np.isnan(values[i]):
                out.append(HourlyExpectation(median, scale, ref.samples, ref.expected_tasks))
                continue
            n = int(tasks[i])
            score = volume_score(float(rest[i]), n - 1, ref.expected_tasks, mean, var)
            out.append(HourlyExpectation(median, scale, ref.samples, ref.expected_tasks, n, score))
        return out

    @staticmethod
    def _references(
        values: np.ndarray,
        tasks: np.ndarray,
        idx: np.ndarray,
        days: int,
        weeks: int,
        min_days: int,
        min_weeks: int,
    ) -> list[HourlyExpectation | None]:
        daily = _lagged(values, tasks, idx, 24, days, min_days)
        weekly = _lagged(values, tasks, idx, 168, weeks, min_weeks)
        return [
            w if w is not None and d is not None else d for d, w in zip(daily, weekly, strict=True)
        ]


# A trend is followed up to this factor; beyond it the recent past itself was
# unusual, and an event is not to be absorbed into normal.
MAX_GROWTH = 2.0


def growth(values: np.ndarray, refs: Sequence[HourlyExpectation | None]) -> float:
    """How far recent hours stood above their baselines, as a factor in [1, MAX_GROWTH].

    The sum of the hours over the sum of their medians, where both are known and
    at least a day of hours is; 1 otherwise. Only growth is followed: a shrinking
    scope keeps the higher baseline, which errs toward silence.
    """
    pairs = [
        (float(v), r.median)
        for v, r in zip(values, refs, strict=True)
        if r is not None and not np.isnan(v)
    ]
    normal = sum(m for _, m in pairs)
    if len(pairs) < 24 or normal <= 0:
        return 1.0
    return min(max(sum(v for v, _ in pairs) / normal, 1.0), MAX_GROWTH)


def _expected_count(counts: np.ndarray) -> np.ndarray:
    """Per row, the mean task count with bursts clipped (a Poisson-aware winsorised mean)."""
    median = np.nanmedian(counts, axis=1)
    cap = median + 3.0 * np.sqrt(median) + 2.0
    return np.nanmean(np.minimum(counts, cap[:, None]), axis=1)


def _lagged(
    values: np.ndarray, tasks: np.ndarray, idx: np.ndarray, step: int, count: int, need: int
) -> list[HourlyExpectation | None]:
    """Per hour, the reference of the hour and its neighbours on ``count`` earlier lags."""
    if count < 1:
        return [None] * len(idx)
    lags = step * np.arange(1, count + 1)
    # The same hour and its neighbours (±1, for jitter) on every earlier lag, pooled
    # into one sample: a busy neighbour widens the spread instead of moving the median.
    at = np.concatenate([idx[:, None] + offset - lags[None, :] for offset in (-1, 0, 1)], axis=1)
    sample = np.where(at >= 0, values[np.clip(at, 0, None)], np.nan)
    counts = np.where(at >= 0, tasks[np.clip(at, 0, None)], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows are expected
        median = np.nanmedian(sample, axis=1)
        # 1.4826 × MAD, as scipy.stats.median_abs_deviation(scale="normal"),
        # vectorised over hours with gaps (NaN) left out.
        scale = _NORMAL * np.nanmedian(np.abs(sample - median[:, None]), axis=1)
        lam = _expected_count(counts)
    # Each lag must have history for the hour itself.
    n = np.sum(~np.isnan(sample[:, count : 2 * count]), axis=1)
    median = np.where(n >= need, median, np.nan)
    return [
        None
        if np.isnan(m)
        else HourlyExpectation(
            median=float(m),
            scale=max(float(s), SCALE_FLOOR * float(m)),
            samples=int(k),
            expected_tasks=float(e),
        )
        for m, s, k, e in zip(median, scale, n, lam, strict=True)
    ]


_NORMAL = 1.0 / float(norm.ppf(0.75))


def hour_label(hour: datetime) -> str:
    return fmt_ts(hour)[:13] + ":00Z"
