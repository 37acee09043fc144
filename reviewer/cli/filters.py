"""The run filters and number formats the metrics commands share."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from reviewer.cli.base import F, iso

if TYPE_CHECKING:
    from store import MetricFilter


def filter_options(f: F) -> F:
    """The run filters every metrics command takes."""
    for opt in reversed(
        [
            click.option("--since", callback=iso, help="Runs created at or after (ISO 8601)."),
            click.option("--until", callback=iso, help="Runs created before (ISO 8601)."),
            click.option("--task-type", default=None, help="Only runs of this task type."),
            click.option("--model", default=None, help="Only runs of this model."),
            click.option("--executor", default=None, help="Only runs of this executor."),
        ]
    ):
        f = opt(f)
    return f


def metric_filter(
    since: datetime | None,
    until: datetime | None,
    task_type: str | None,
    model: str | None,
    executor: str | None,
) -> MetricFilter:
    from store import MetricFilter
    from store.timeutil import fmt_ts

    return MetricFilter(
        since=fmt_ts(since) if since else None,
        until=fmt_ts(until) if until else None,
        task_type=task_type,
        model=model,
        executor=executor,
    )


def fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}{suffix}" if math.isfinite(value) else "-"
    return f"{value}{suffix}"


def pct(rate: float | None) -> str:
    return "-" if rate is None or not math.isfinite(rate) else f"{rate * 100:.1f}%"
