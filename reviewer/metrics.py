"""Pipeline metrics (the seed spec's Phase 1): durations, success rates, usage.

One definition of a percentile is used everywhere: linear interpolation
between the closest ranks. For ``n`` sorted durations ``x[0..n-1]`` the
``p``-th percentile is ``x[k] + (h - k) * (x[k+1] - x[k])`` with
``h = (n - 1) * p`` and ``k = floor(h)``; this is numpy's default
(``method="linear"``) and PostgreSQL's ``percentile_cont``. Runs without a
duration are left out of the percentiles and averages, but counted in the
success rate.

A *run* is one TaskMetric row (one finished execution); a *task* is a
distinct ``task_id``, so ``usage.per_task`` divides by tasks, not runs, and a
task retried three times costs its three runs. Runs whose ``task_type`` or
``model`` or ``executor`` is missing are grouped under ``"unknown"``.

Every figure is computed in the database (one grouped scan, plus an index walk
per percentile); only a few dozen rows reach Python.
"""

from __future__ import annotations

import math
from typing import Any

from store import BacklogView, MetricFilter

UNKNOWN = "unknown"
USAGE_FIELDS = ("tokens_in", "tokens_out", "cost_usd", "api_calls")


def percentile(view: BacklogView, f: MetricFilter, n: int, p: float) -> float | None:
    """The ``p``-th (0..1) percentile of the ``n`` filtered durations, by the module's rule."""
    if n <= 0:
        return None
    h = (n - 1) * p
    k = min(math.floor(h), n - 1)
    low, high = view.duration_at_rank(f, k)
    frac = h - k
    if high is None or frac == 0:
        return low
    return low + frac * (high - low)


def _rate(completed: int, total: int) -> float | None:
    return round(completed / total, 4) if total else None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


class _Tally:
    """Running sums for one breakdown key."""

    __slots__ = ("completed", "duration_sum", "failed", "timed")

    def __init__(self) -> None:
        self.completed = 0
        self.failed = 0
        self.timed = 0
        self.duration_sum = 0.0

    def add(self, row: dict[str, Any]) -> None:
        runs = int(row["runs"])
        if row["status"] == "completed":
            self.completed += runs
        else:
            self.failed += runs
        self.timed += int(row["timed"] or 0)
        self.duration_sum += float(row["duration_sum"] or 0.0)

    @property
    def total(self) -> int:
        return self.completed + self.failed

    def public(self) -> dict[str, Any]:
        avg = self.duration_sum / self.timed if self.timed else None
        return {
            "success_rate": _rate(self.completed, self.total),
            "completed": self.completed,
            "failed": self.failed,
            "count": self.total,
            "avg_duration": _round(avg),
        }


def pipeline_metrics(view: BacklogView, f: MetricFilter | None = None) -> dict[str, Any]:
    """The ``GET /api/agent/metrics`` document for the runs ``f`` selects, as of ``view.now``.

    Keys are the seed spec's (``execution_time``, ``success_rate``,
    ``by_task_type``, ``by_model``) plus ``usage``; the objects carry extra
    fields beside the seed's (``success_rate.by_executor``, counts, averages).
    """
    f = f or MetricFilter()
    overall = _Tally()
    by: dict[str, dict[str, _Tally]] = {"task_type": {}, "model": {}, "executor": {}}
    usage: dict[str, float] = dict.fromkeys(USAGE_FIELDS, 0)
    usage_seen: dict[str, bool] = dict.fromkeys(USAGE_FIELDS, False)
    for row in view.metric_groups(f):
        overall.add(row)
        for dim, tallies in by.items():
            tallies.setdefault(row[dim] or UNKNOWN, _Tally()).add(row)
        for key in USAGE_FIELDS:
            if row[key] is not None:
                usage[key] += row[key]
                usage_seen[key] = True

    n = overall.timed
    tasks = view.metric_task_count(f) if overall.total else 0
    totals = {k: (round(v, 6) if k == "cost_usd" else int(v)) for k, v in usage.items()}

    def per(divisor: int) -> dict[str, float | None]:
        return {
            k: (_round(usage[k] / divisor, 6) if divisor and usage_seen[k] else None)
            for k in USAGE_FIELDS
        }

    return {
        "execution_time": {
            "p50_seconds": _round(percentile(view, f, n, 0.50)),
            "p95_seconds": _round(percentile(view, f, n, 0.95)),
            "count": n,
            "avg_seconds": _round(overall.duration_sum / n if n else None),
        },
        "success_rate": {
            "completed": overall.completed,
            "failed": overall.failed,
            "total": overall.total,
            "rate": _rate(overall.completed, overall.total),
            "by_executor": {k: t.public() for k, t in sorted(by["executor"].items())},
        },
        "by_task_type": {k: t.public() for k, t in sorted(by["task_type"].items())},
        "by_model": {k: t.public() for k, t in sorted(by["model"].items())},
        "usage": {
            **{k: (totals[k] if usage_seen[k] else None) for k in USAGE_FIELDS},
            "runs": overall.total,
            "tasks": tasks,
            "per_task": per(tasks),
            "per_run": per(overall.total),
        },
    }
