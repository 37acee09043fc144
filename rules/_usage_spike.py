"""Hourly spike detection for usage-spikes: baselines per hour and the hysteresis."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from rules._usage_stats import (
    DAY,
    HOUR,
    HourlyExpectation,
    HourlySeries,
    Thresholds,
    open_since,
)

MEASURES = ("tokens", "cost")
# How many recent hours a finding shows; enough to see the spike's shape.
SERIES_HOURS = 12


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
    min_weeks: int = 3

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


@dataclass
class Spike:
    """An open spike of one measure for one scope."""

    dimension: str
    name: str
    measure: str
    opened_at: datetime
    hours: list[HourVerdict]  # the recent hours, oldest first
    episode: list[HourVerdict] = field(default_factory=list)  # since opened_at

    @property
    def subject(self) -> str:
        return f"{self.dimension}:{self.name}"

    @property
    def peak(self) -> HourVerdict:
        return max(
            (h for h in self.episode if h.anomalous and h.value is not None),
            key=lambda h: h.value or 0.0,
        )


def find_spikes(rows: Iterable[dict[str, Any]], until: datetime, p: SpikeParams) -> list[Spike]:
    """The spikes open at ``until`` (the end of the last complete hour), one per scope.

    When both tokens and cost of a scope spike, the one further above normal is
    kept: they are the same event.
    """
    since, _ = p.window(until)
    size = (until - since) // HOUR
    series: dict[tuple[str, str, str], HourlySeries] = {}
    for row in rows:
        for m in MEASURES:
            key = (row["dimension"], row["name"], m)
            if key not in series:
                series[key] = HourlySeries(since, size)
            series[key].add(row["hour"], row[m], row[f"{m}_n"], row[f"{m}_sq"])
    hours = [until - (p.lookback - i) * HOUR for i in range(p.lookback)]
    found: dict[tuple[str, str], Spike] = {}
    for (dim, name, measure), s in sorted(series.items()):
        verdicts = _judge(s, hours, p, p.limits[measure])
        start = open_since([v.anomalous for v in verdicts], p.open_after, p.close_after)
        if start is None:
            continue
        spike = Spike(
            dim, name, measure, verdicts[start].hour, verdicts[-SERIES_HOURS:], verdicts[start:]
        )
        other = found.get((dim, name))
        if other is None or _strength(spike) > _strength(other):
            found[(dim, name)] = spike
    return list(found.values())


def _judge(
    s: HourlySeries, hours: list[datetime], p: SpikeParams, limit: Thresholds
) -> list[HourVerdict]:
    idx = np.array([s.index(h) for h in hours])
    values = s.values()
    bases = s.baselines(idx, p.days, p.weeks, p.min_days, p.min_weeks)
    verdicts = []
    for hour, i, base in zip(hours, idx, bases, strict=True):
        value = None if np.isnan(values[i]) else float(values[i])
        anomalous = (
            value is not None
            and base is not None
            and limit.exceeded(value, base)
            and base.volume_score >= p.volume_score
        )
        verdicts.append(HourVerdict(hour, value, base, anomalous))
    return verdicts


def _strength(spike: Spike) -> float:
    peak = spike.peak
    assert peak.baseline is not None and peak.value is not None
    return peak.baseline.ratio(peak.value)
