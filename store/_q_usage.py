"""Queries for usage-spikes: tokens and cost per task, per scope and hour."""

from __future__ import annotations

from typing import Any

from store._q_base import QueryBase, Row

# The scopes a usage figure can be broken down by; the names are also column
# names, so only these ever reach the SQL text.
USAGE_DIMENSIONS = ("model", "executor", "task_type")

# A task's tokens: in + out, NULL only when the pipeline reported neither, so
# "not reported" never reads as "zero tokens". In floats: two 64-bit counts, or a
# sum of them, can pass 2**63 - 1, and SQLite's integer SUM() then fails with
# "integer overflow"; PostgreSQL sums them as numeric.
_TOKENS = (
    "CASE WHEN tokens_in IS NULL AND tokens_out IS NULL THEN NULL"
    " ELSE COALESCE(tokens_in, 0) * 1.0 + COALESCE(tokens_out, 0) END"
)


def _peer_group(task_type: str, model: str) -> str:
    """``COALESCE(task_type, '') = :task_type AND COALESCE(model, '') = :model``, written
    so the database can seek its indexes (a COALESCE around a column hides it from them)."""

    def same(col: str, value: str) -> str:
        return f"({col} IS NULL OR {col} = '')" if value == "" else f"{col} = :{col}"

    return f"{same('task_type', task_type)} AND {same('model', model)}"


def _num(value: Any) -> float | None:
    # PostgreSQL sums integers into Decimal; rules work in floats.
    return None if value is None else float(value)


class UsageQueries(QueryBase):
    """Aggregates in SQL over the as-of relations; small results only."""

    def usage_peer_groups(self, recent_since: str, history_since: str, min_peers: int) -> list[Row]:
        """(task_type, model) groups with a task after ``recent_since`` and enough history.

        ``task_type`` and ``model`` come back as '' when the pipeline left them out.
        """
        return self.rows(
            """SELECT COALESCE(task_type, '') AS task_type, COALESCE(model, '') AS model,
                      COUNT(*) AS peers
               FROM {metrics}
               WHERE created_at > :history_since
               GROUP BY COALESCE(task_type, ''), COALESCE(model, '')
               HAVING COUNT(*) >= :min_peers
                  AND MAX(created_at) > :recent_since
               ORDER BY 1, 2""",
            {"recent_since": recent_since, "history_since": history_since, "min_peers": min_peers},
        )

    def usage_peer_values(
        self, task_type: str, model: str, history_since: str, limit: int
    ) -> tuple[list[float], list[float]]:
        """Tokens and costs of the group's most recent ``limit`` tasks (unreported left out)."""
        tokens: list[float] = []
        costs: list[float] = []
        for row in self.iter_rows(
            f"""SELECT {_TOKENS} AS tokens, cost_usd
                FROM {{metrics}}
                WHERE {_peer_group(task_type, model)} AND created_at > :history_since
                ORDER BY created_at DESC
                LIMIT :limit""",
            {
                "task_type": task_type,
                "model": model,
                "history_since": history_since,
                "limit": limit,
            },
        ):
            if row["tokens"] is not None:
                tokens.append(float(row["tokens"]))
            if row["cost_usd"] is not None:
                costs.append(float(row["cost_usd"]))
        return tokens, costs

    def usage_heavy_tasks(
        self,
        task_type: str,
        model: str,
        since: str,
        tokens_above: float | None,
        cost_above: float | None,
    ) -> list[Row]:
        """The group's tasks after ``since`` whose tokens or cost reach the given cut."""
        over = []
        if tokens_above is not None:
            over.append(f"({_TOKENS}) >= :tokens_above")
        if cost_above is not None:
            over.append("cost_usd >= :cost_above")
        if not over:
            return []
        rows = self.rows(
            f"""SELECT task_id, created_at, executor, tokens_in, tokens_out,
                       {_TOKENS} AS tokens, cost_usd
                FROM {{metrics}}
                WHERE {_peer_group(task_type, model)} AND created_at > :since
                  AND ({" OR ".join(over)})
                ORDER BY created_at, task_id
                LIMIT 1000""",
            {
                "task_type": task_type,
                "model": model,
                "since": since,
                "tokens_above": tokens_above,
                "cost_above": cost_above,
            },
        )
        for row in rows:
            row["tokens"] = _num(row["tokens"])
            row["cost_usd"] = _num(row["cost_usd"])
        return rows

    def usage_hourly(self, since: str, until: str) -> list[Row]:
        """Hourly sums over ``[since, until)``, one row per (model, executor, task_type, hour).

        Each row has ``model``, ``executor`` and ``task_type`` (NULL where the
        pipeline left them out), ``hour`` (stored form of the hour's start),
        ``tasks``, ``tokens``/``tokens_n``/``tokens_sq`` and ``cost``/``cost_n``/
        ``cost_sq`` (the sum, how many tasks reported it, so an hour where nobody
        reported cost is told apart from an hour that cost nothing, and the sum of
        squares, for the spread of one task's usage), and ``tokens_max``/``cost_max``
        (the largest single task). Any scope's hourly figures
        are sums of these cells, also with the tasks of other scopes left out.
        """
        bucket = self.dialect.hour_bucket("created_at")
        rows = self.rows(
            f"""SELECT model, executor, task_type, {bucket} AS hour,
                       COUNT(*) AS tasks,
                       SUM({_TOKENS}) AS tokens, COUNT({_TOKENS}) AS tokens_n,
                       SUM(cost_usd) AS cost, COUNT(cost_usd) AS cost_n,
                       SUM(({_TOKENS}) * 1.0 * ({_TOKENS})) AS tokens_sq,
                       SUM(cost_usd * cost_usd) AS cost_sq,
                       MAX({_TOKENS}) AS tokens_max, MAX(cost_usd) AS cost_max
                FROM {{metrics}}
                WHERE created_at >= :since AND created_at < :until
                GROUP BY model, executor, task_type, {bucket}""",
            {"since": since, "until": until},
        )
        for row in rows:
            for key in ("tokens", "cost", "tokens_sq", "cost_sq", "tokens_max", "cost_max"):
                row[key] = _num(row[key])
        return rows

    def usage_spend(self, since: str, dimension: str | None = None) -> dict[str, tuple[float, int]]:
        """Cost and task count after ``since``, per scope name (or under '' for all tasks)."""
        if dimension is None:
            rows = self.rows(
                """SELECT SUM(cost_usd) AS cost, COUNT(*) AS tasks
                   FROM {metrics} WHERE created_at >= :since""",
                {"since": since},
            )
            return {"": (_num(rows[0]["cost"]) or 0.0, int(rows[0]["tasks"]))}
        if dimension not in USAGE_DIMENSIONS:
            raise ValueError(f"unknown usage dimension {dimension!r}")
        rows = self.rows(
            f"""SELECT {dimension} AS name, SUM(cost_usd) AS cost, COUNT(*) AS tasks
                FROM {{metrics}}
                WHERE created_at >= :since AND {dimension} IS NOT NULL
                GROUP BY {dimension}""",
            {"since": since},
        )
        return {r["name"]: (_num(r["cost"]) or 0.0, int(r["tasks"])) for r in rows}
