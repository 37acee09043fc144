"""Hourly spike detection for usage-spikes: baselines per hour, hysteresis and causes.

One event raises several scopes at once: a retry loop of ``impl`` tasks also
raises the models and executors that ran them. As the error-rate breaker does,
the scope with the largest excess is taken first, and every other spiking scope
is judged again without the tasks of the scopes taken in the other dimensions:
one finding per cause, naming the scopes it explains.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from rules.usage_spikes.stats import (
    DAY,
    HOUR,
    HourlyExpectation,
    HourlySeries,
    Thresholds,
    open_since,
    volume_score,
)
from store.timeutil import parse_ts

MEASURES = ("tokens", "cost")
DIMENSIONS = ("model", "executor", "task_type")
# How many recent hours a finding shows; enough to see the spike's shape.
SERIES_HOURS = 12


@dataclass(frozen=True)
class ShiftParams:
    """A one-sided CUSUM of the hours' robust scores, for rises no single hour shows.

    Each hour adds its robust score against its own baseline, less ``slack``
    (capped at ``cap``, so one wild hour is never enough), and the sum never goes
    below zero; at ``limit`` the rise is sustained. The hours of the rise together
    must then be ``ratio`` times their baselines, above them by twice the hourly
    floor, and unlikely by chance given their task counts and sizes.
    """

    slack: float
    limit: float
    ratio: float

    @property
    def cap(self) -> float:
        return self.limit / 2 + self.slack


@dataclass(frozen=True)
class SpikeParams:
    """The spike options in the units the detector works in."""

    days: int  # days of baseline history
    min_days: int  # earlier days needed before an hour can be judged
    lookback: int  # complete hours replayed for the hysteresis
    open_after: int
    close_after: int
    limits: dict[str, Thresholds]
    volume_score: float  # how unlikely the hour's count or per-task usage must be
    shift: ShiftParams | None = None  # sustained rises over several hours (CUSUM)
    level_hours: int = 168  # recent hours a growing scope's baseline is scaled by
    min_weeks: int = 3
    dimensions: tuple[str, ...] = DIMENSIONS

    @property
    def weeks(self) -> int:
        return self.days // 7

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """The hours to fetch: ``[since, until)``, ``until`` the start of the current hour."""
        until = now.replace(minute=0, second=0, microsecond=0)
        since = until - self.lookback * HOUR - (self.days + 1) * DAY
        return since, until


@dataclass(frozen=True)
class HourVerdict:
    hour: datetime
    value: float | None
    baseline: HourlyExpectation | None
    anomalous: bool
    sustained: bool = False  # anomalous by the CUSUM of several hours, not the hour alone
    # How unlikely the evidence that made it anomalous is by chance, as a
    # normal-equivalent z (the hour's, or its run's when sustained); -inf if normal.
    z: float = float("-inf")


@dataclass
class Spike:
    """An open spike of one measure for one scope."""

    dimension: str
    name: str
    measure: str
    opened_at: datetime
    hours: list[HourVerdict]  # the recent hours, oldest first
    episode: list[HourVerdict] = field(default_factory=list)  # since opened_at
    excluding: list[str] = field(default_factory=list)  # causes whose tasks were left out
    explains: list[str] = field(default_factory=list)  # scopes raised only by this one

    @property
    def subject(self) -> str:
        return f"{self.dimension}:{self.name}"

    @property
    def peak(self) -> HourVerdict:
        return max(
            (h for h in self.episode if h.anomalous and h.value is not None),
            key=lambda h: h.value or 0.0,
        )

    @property
    def z(self) -> float:
        """The strongest evidence of the episode (normal-equivalent z)."""
        return max(h.z for h in self.episode)

    def totals(self) -> tuple[float, float]:
        """The episode's usage and what its hours usually hold, summed."""
        hours = [h for h in self.episode if h.value is not None and h.baseline is not None]
        return (
            sum(h.value or 0.0 for h in hours),
            sum(h.baseline.median for h in hours if h.baseline is not None),
        )

    @property
    def excess(self) -> float:
        """Usage above normal over the episode, in the measure's unit."""
        return sum(
            h.value - h.baseline.median
            for h in self.episode
            if h.value is not None and h.baseline is not None
        )


class UsageCells:
    """A window's hourly usage per (model, executor, task_type), summed into scopes in numpy.

    Any scope's hourly series is a sum of cells, also with the tasks of other
    scopes left out, so attribution needs one query, not one per scope.
    """

    def __init__(self, rows: Iterable[Mapping[str, Any]], since: datetime, size: int) -> None:
        self.since, self.size = since, size
        self._codes: dict[str, dict[str, int]] = {d: {} for d in DIMENSIONS}
        offset: dict[str, int] = {}
        picked = []
        for row in rows:
            hour = str(row["hour"])
            if hour not in offset:
                offset[hour] = int((parse_ts(hour) - since) // HOUR)
            if 0 <= offset[hour] < size:
                picked.append(row)
        # One order on every store, so float sums come out bit for bit the same.
        picked.sort(key=lambda r: (str(r["hour"]), *(str(r[d] or "") for d in DIMENSIONS)))
        self._hour = np.array([offset[str(r["hour"])] for r in picked], dtype=np.int64)
        self._cols = {
            d: np.array([self._code(d, r[d]) for r in picked], dtype=np.int64) for d in DIMENSIONS
        }
        self._tasks = np.array([float(r["tasks"]) for r in picked])
        self._sums = {
            m: (
                np.array([float(r[m] or 0.0) for r in picked]),
                np.array([float(r[f"{m}_n"] or 0) for r in picked]),
                np.array([float(r[f"{m}_sq"] or 0.0) for r in picked]),
            )
            for m in MEASURES
        }
        self._top = {m: np.array([float(r[f"{m}_max"] or 0.0) for r in picked]) for m in MEASURES}

    def _code(self, dim: str, name: Any) -> int:
        if name is None:
            return -1
        return self._codes[dim].setdefault(str(name), len(self._codes[dim]))

    def scopes(self, dimensions: Sequence[str]) -> list[tuple[str, str]]:
        return [(d, name) for d in dimensions for name in sorted(self._codes[d])]

    def series(
        self, dim: str, name: str, measure: str, exclude: Mapping[str, set[str]]
    ) -> HourlySeries:
        """The scope's hourly series, leaving out tasks of the ``exclude`` scopes."""
        mask = self._cols[dim] == self._codes[dim][name]
        for other, names in exclude.items():
            codes = [self._codes[other][n] for n in names if other != dim]
            if codes:
                mask &= ~np.isin(self._cols[other], codes)
        hour = self._hour[mask]

        def total(weights: np.ndarray) -> np.ndarray:
            return np.bincount(hour, weights=weights[mask], minlength=self.size).astype(float)

        values, reported, squares = (total(a) for a in self._sums[measure])
        top = np.zeros(self.size)
        np.maximum.at(top, hour, self._top[measure][mask])
        return HourlySeries(self.since, values, reported, squares, total(self._tasks), top)


def find_spikes(rows: Iterable[dict[str, Any]], until: datetime, p: SpikeParams) -> list[Spike]:
    """The spikes open at ``until`` (the end of the last complete hour), one per cause.

    Per measure, the spiking scope with the largest excess is the first cause; every
    other spiking scope is judged again without the tasks of the causes taken in
    the other dimensions, and is named as explained by that cause once it no longer
    spikes. The largest excess left is the next cause, until none is left. When
    both tokens and cost of a scope spike, the one further above normal is kept:
    they are the same event.
    """
    since, _ = p.window(until)
    cells = UsageCells(rows, since, (until - since) // HOUR)
    hours = [until - (p.lookback - i) * HOUR for i in range(p.lookback)]
    rank = {d: i for i, d in enumerate(p.dimensions)}
    found: dict[tuple[str, str], Spike] = {}
    explained: dict[tuple[str, str], list[str]] = {}
    for measure in MEASURES:
        raw: dict[tuple[str, str], Spike] = {}
        for dim, name in cells.scopes(p.dimensions):
            spike = _spike(cells.series(dim, name, measure, {}), dim, name, measure, hours, p)
            if spike is not None:
                raw[(dim, name)] = spike
        taken: dict[str, set[str]] = {d: set() for d in DIMENSIONS}
        causes: list[Spike] = []
        left = dict(raw)
        while left:
            # The largest excess still unexplained is the next cause (ties: the larger
            # raw excess, then the dimensions' order); the rest are judged again
            # without its tasks, and what no longer spikes is explained.
            key = min(
                left,
                key=lambda k: (-left[k].excess, -raw[k].excess, rank[k[0]], k[1]),
            )
            cause = left.pop(key)
            cause.excluding = sorted(
                f"{d}:{n}" for d, names in taken.items() if d != key[0] for n in names
            )
            taken[key[0]].add(key[1])
            causes.append(cause)
            for dim, name in list(left):
                if dim == key[0]:
                    continue  # the cause's tasks are not in a scope of its own dimension
                others = {d: names for d, names in taken.items() if d != dim and names}
                series = cells.series(dim, name, measure, others)
                again = _spike(series, dim, name, measure, hours, p)
                if again is None:
                    del left[(dim, name)]
                    explained.setdefault(key, []).append(f"{dim}:{name}")
                else:
                    left[(dim, name)] = again
        for spike in causes:
            key = (spike.dimension, spike.name)
            other = found.get(key)
            if other is None or _strength(spike) > _strength(other):
                found[key] = spike
    reported = {s.subject for s in found.values()}
    for key, spike in found.items():
        spike.explains = sorted(set(explained.get(key, [])) - reported)
    return list(found.values())


def _spike(
    s: HourlySeries, dim: str, name: str, measure: str, hours: list[datetime], p: SpikeParams
) -> Spike | None:
    verdicts = _judge(s, hours, p, p.limits[measure])
    start = open_since([v.anomalous for v in verdicts], p.open_after, p.close_after)
    if start is None:
        return None
    return Spike(
        dim, name, measure, verdicts[start].hour, verdicts[-SERIES_HOURS:], verdicts[start:]
    )


def _judge(
    s: HourlySeries, hours: list[datetime], p: SpikeParams, limit: Thresholds
) -> list[HourVerdict]:
    idx = np.array([s.index(h) for h in hours])
    values, rest, tasks, top = s.values(), s.rest(), s.tasks(), s.top()
    bases = s.baselines(idx, p.days, p.weeks, p.min_days, p.min_weeks, p.level_hours)
    mean, var = s.per_task(int(idx.min()) if idx.size else 0)
    verdicts = []
    shift = p.shift
    cusum, run = 0.0, _Run()
    for hour, i, base in zip(hours, idx, bases, strict=True):
        value = None if np.isnan(values[i]) else float(values[i])
        # Far above normal even without the hour's largest task: one runaway task
        # is a task-outlier, not a spike of the scope.
        anomalous = (
            value is not None
            and base is not None
            and limit.exceeded(float(rest[i]), base)
            and base.volume_score >= p.volume_score
        )
        sustained, z_rise = False, float("-inf")
        if shift is not None:
            if value is None or base is None:
                cusum, run = 0.0, _Run()
            else:
                z = min(base.score(value), shift.cap) if base.scale > 0 else 0.0
                if cusum <= 0:
                    run = _Run()
                cusum = max(0.0, cusum + z - shift.slack)
                if cusum > 0:
                    run.add(value, base, float(tasks[i]), float(top[i]))
                if cusum >= shift.limit and z >= shift.slack:
                    z_rise = run.rise(shift.ratio, 2 * limit.excess, mean, var)
                    sustained = z_rise >= p.volume_score
        z_hour = base.volume_score if anomalous and base is not None else float("-inf")
        verdicts.append(
            HourVerdict(
                hour,
                value,
                base,
                anomalous or sustained,
                sustained and not anomalous,
                max(z_hour, z_rise if sustained else float("-inf")),
            )
        )
    return verdicts


@dataclass
class _Run:
    """The hours of a CUSUM run: their sums, baselines, task counts and largest task."""

    value: float = 0.0
    baseline: float = 0.0
    tasks: float = 0.0
    expected_tasks: float = 0.0
    top: float = 0.0

    def add(self, value: float, base: HourlyExpectation, tasks: float, top: float) -> None:
        self.value += value
        self.baseline += base.median
        self.tasks += tasks
        self.expected_tasks += base.expected_tasks
        self.top = max(self.top, top)

    def rise(self, ratio: float, excess: float, mean: float, var: float) -> float:
        """How unlikely the run is by chance (a normal-equivalent z), or -inf when too small.

        As for one hour, the run's largest task is left out of the evidence.
        """
        rest = self.value - self.top
        if rest - self.baseline < excess or rest < ratio * self.baseline:
            return float("-inf")
        return volume_score(rest, int(self.tasks) - 1, self.expected_tasks, mean, var)


def _strength(spike: Spike) -> float:
    peak = spike.peak
    assert peak.baseline is not None and peak.value is not None
    return peak.baseline.ratio(peak.value)
