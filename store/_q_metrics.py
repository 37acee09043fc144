"""Queries for pipeline metrics (Phase 1) and A/B arms (Phase 2).

Everything is aggregated in the database. The one figure SQL cannot aggregate
portably, an exact percentile, is read as the two neighbouring values at the
closest ranks (``ORDER BY duration_seconds LIMIT 2 OFFSET k``), which an index
on ``duration_seconds`` turns into an index walk instead of a sort.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from store._q_base import QueryBase, Row

# The task_metrics columns an A/B comparison may split runs by.
ARM_COLUMNS = ("prompt_variant", "skill_version", "model")


@dataclass(frozen=True)
class MetricFilter:
    """Which metric rows a figure covers: ``since`` ≤ created_at < ``until``, plus tags.

    Timestamps are in the stored form (``YYYY-MM-DDTHH:MM:SSZ``); ``None``
    means no bound. The view's ``now`` bounds every query as well.
    """

    since: str | None = None
    until: str | None = None
    task_type: str | None = None
    model: str | None = None
    executor: str | None = None

    def sql(self) -> tuple[str, dict[str, Any]]:
        """A ``WHERE`` condition (always valid SQL) and its parameters."""
        parts = ["1 = 1"]
        params: dict[str, Any] = {}
        if self.since is not None:
            parts.append("created_at >= :f_since")
            params["f_since"] = self.since
        if self.until is not None:
            parts.append("created_at < :f_until")
            params["f_until"] = self.until
        for col in ("task_type", "model", "executor"):
            value = getattr(self, col)
            if value is not None:
                parts.append(f"{col} = :f_{col}")
                params[f"f_{col}"] = value
        return " AND ".join(parts), params

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class MetricQueries(QueryBase):
    """Aggregates in SQL over ``{metrics}``; small results only."""

    def metric_groups(self, f: MetricFilter) -> list[Row]:
        """Run counts, duration sums and usage totals per (task_type, model, executor, status).

        One scan; the handful of groups is rolled up into every breakdown by
        the caller.
        """
        where, params = f.sql()
        return self.rows(
            f"""SELECT task_type, model, executor, status,
                       COUNT(*) AS runs,
                       COUNT(duration_seconds) AS timed,
                       SUM(duration_seconds) AS duration_sum,
                       SUM(tokens_in * 1.0) AS tokens_in,
                       SUM(tokens_out * 1.0) AS tokens_out,
                       SUM(cost_usd) AS cost_usd,
                       SUM(api_calls * 1.0) AS api_calls
                FROM {{metrics}}
                WHERE {where}
                GROUP BY task_type, model, executor, status""",
            params,
        )

    def metric_task_count(self, f: MetricFilter) -> int:
        """How many distinct tasks the filtered runs belong to."""
        where, params = f.sql()
        # GROUP BY rides the (task_id, created_at) key in order; COUNT(DISTINCT) would sort.
        return int(
            self.scalar(
                f"""SELECT COUNT(*) FROM (
                        SELECT task_id FROM {{metrics}} WHERE {where} GROUP BY task_id
                    ) AS per_task""",
                params,
            )
            or 0
        )

    def duration_at_rank(self, f: MetricFilter, rank: int) -> tuple[float, float | None]:
        """The ``rank``-th smallest duration (0-based) and the one after it, if any."""
        where, params = f.sql()
        rows = self.rows(
            f"""SELECT duration_seconds AS d FROM {{metrics}}
                WHERE duration_seconds IS NOT NULL AND {where}
                ORDER BY duration_seconds LIMIT 2 OFFSET :rank""",
            {**params, "rank": rank},
        )
        if not rows:
            raise LookupError(f"no duration at rank {rank}")
        nxt = float(rows[1]["d"]) if len(rows) > 1 else None
        return float(rows[0]["d"]), nxt

    # -- A/B arms ---------------------------------------------------------------------
    def arm_counts(self, column: str, f: MetricFilter) -> list[Row]:
        """Runs, completions and timed runs per value of ``column`` (one of ARM_COLUMNS)."""
        if column not in ARM_COLUMNS:
            raise ValueError(f"cannot compare by {column!r}; expected one of {ARM_COLUMNS}")
        where, params = f.sql()
        return self.rows(
            f"""SELECT {column} AS arm,
                       COUNT(*) AS runs,
                       SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) AS completed,
                       COUNT(duration_seconds) AS timed,
                       AVG(duration_seconds) AS avg_duration
                FROM {{metrics}}
                WHERE {column} IS NOT NULL AND {where}
                GROUP BY {column}
                ORDER BY {column}""",
            params,
        )

    def arm_durations(self, column: str, arm: str, f: MetricFilter, cap: int) -> list[float]:
        """The durations of one arm's runs: at most ``cap``, the most recent ones."""
        if column not in ARM_COLUMNS:
            raise ValueError(f"cannot compare by {column!r}; expected one of {ARM_COLUMNS}")
        where, params = f.sql()
        return [
            float(r["d"])
            for r in self.iter_rows(
                f"""SELECT duration_seconds AS d FROM {{metrics}}
                    WHERE {column} = :arm AND duration_seconds IS NOT NULL AND {where}
                    ORDER BY created_at DESC, task_id DESC LIMIT :cap""",
                {**params, "arm": arm, "cap": cap},
            )
        ]
