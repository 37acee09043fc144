"""Queries for the review page's charts: pipeline metrics per day and per tag.

One grouped scan gives runs, completions and cost per (day, tag value); the
percentiles per day reuse ``duration_at_rank`` with a one-day ``MetricFilter``
(an index walk each), so nothing but a few dozen rows reaches Python.
"""

from __future__ import annotations

from store._q_base import QueryBase, Row
from store._q_metrics import MetricFilter

# The task_metrics columns a chart may split its series by.
SERIES_COLUMNS = ("model", "task_type")


class SeriesQueries(QueryBase):
    """Per-day aggregates over ``{metrics}`` for charts."""

    def metric_last_at(self) -> str | None:
        """When the latest metric row (as of ``now``) was recorded, if any."""
        value = self.scalar("SELECT MAX(created_at) FROM {metrics}")
        return str(value) if value else None

    def metric_daily(self, column: str, f: MetricFilter) -> list[Row]:
        """Per day (``YYYY-MM-DD``) and value of ``column``: ``runs``, ``completed``,
        ``timed`` (runs with a duration) and ``cost_usd``."""
        if column not in SERIES_COLUMNS:
            raise ValueError(f"cannot chart by {column!r}; expected one of {SERIES_COLUMNS}")
        where, params = f.sql()
        return self.rows(
            f"""SELECT SUBSTR(created_at, 1, 10) AS day,
                       COALESCE({column}, 'unknown') AS grp,
                       COUNT(*) AS runs,
                       SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) AS completed,
                       COUNT(duration_seconds) AS timed,
                       SUM(cost_usd) AS cost_usd
                FROM {{metrics}}
                WHERE {where}
                GROUP BY SUBSTR(created_at, 1, 10), COALESCE({column}, 'unknown')
                ORDER BY day, grp""",
            params,
        )
