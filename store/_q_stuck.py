"""Queries for stuck-phases: running tasks, phase flow, failures by executor/model.

Every relation is aliased (``FROM {tasks} t``): PostgreSQL 15 requires an alias
on a subquery in FROM, and the as-of relations are subqueries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from store._q_base import QueryBase, Row

_FINAL = "('completed', 'failed', 'cancelled')"


class StuckQueries(QueryBase):
    """Aggregates in SQL over the as-of relations; small results only."""

    def running_tasks(self, running_for: timedelta) -> list[Row]:
        """Tasks running at ``now`` that started at least ``running_for`` ago, oldest first."""
        # A running task without started_at started when it was last updated.
        return self.rows(
            f"""SELECT id, title, task_type, phase, executor, model, attempts, source, started_at
               FROM (SELECT t.id, t.title, t.task_type, t.phase, t.executor, t.model,
                            t.attempts, t.source,
                            COALESCE(t.started_at, t.updated_at, t.created_at) AS started_at
                     FROM {{tasks}} t
                     WHERE {self.may_be("t", "running")} AND t.state = 'running') r
               WHERE started_at <= :cutoff
               ORDER BY started_at, id""",
            {"cutoff": self.ago(running_for)},
        )

    def phase_duration_p95(self, history: timedelta) -> list[Row]:
        """The nearest-rank p95 run time per (task_type, phase) of tasks completed in ``history``.

        Rows: ``task_type`` and ``phase`` ('' when NULL), ``samples``, ``p95_seconds``.
        Runs that end before they start (clock skew) are left out.
        """
        epoch = self.dialect.epoch
        return self.rows(
            f"""WITH d AS (
                  SELECT COALESCE(t.task_type, '') AS task_type, COALESCE(t.phase, '') AS phase,
                         {epoch("t.finished_at")} - {epoch("t.started_at")} AS secs
                  FROM {{tasks}} t
                  WHERE t.state = 'completed' AND t.started_at IS NOT NULL
                    AND t.finished_at IS NOT NULL AND t.finished_at >= t.started_at
                    AND t.finished_at >= :since
                ), r AS (
                  SELECT task_type, phase, secs,
                         ROW_NUMBER() OVER (PARTITION BY task_type, phase ORDER BY secs) AS rn,
                         COUNT(*) OVER (PARTITION BY task_type, phase) AS samples
                  FROM d
                )
                SELECT task_type, phase, samples, secs AS p95_seconds
                FROM r WHERE rn = (95 * samples + 99) / 100""",
            {"since": self.ago(history)},
        )

    def phase_flow(self, window: timedelta) -> list[Row]:
        """Per named phase with open work at ``now``: what is in it, and what left it in ``window``.

        Rows: ``phase``; ``running`` and ``running_since`` (the earliest start);
        ``pending_free`` and ``pending_free_since`` (pending tasks with no
        dependencies, ready since their creation); ``pending_deps`` (pending tasks
        with dependencies, whose readiness the caller checks); ``outflow`` (tasks
        of the phase that finished, in any way, in ``window``). A phase with no
        running or pending task is idle and has no row.
        """
        no_deps = "(t.depends_on IS NULL OR t.depends_on IN ('', '[]'))"
        left_at = "COALESCE(t.finished_at, t.updated_at, t.created_at)"
        return self.rows(
            f"""SELECT t.phase,
                       SUM(CASE WHEN t.state = 'running' THEN 1 ELSE 0 END) AS running,
                       MIN(CASE WHEN t.state = 'running'
                                THEN COALESCE(t.started_at, t.updated_at, t.created_at) END)
                         AS running_since,
                       SUM(CASE WHEN t.state = 'pending' AND {no_deps} THEN 1 ELSE 0 END)
                         AS pending_free,
                       MIN(CASE WHEN t.state = 'pending' AND {no_deps} THEN t.created_at END)
                         AS pending_free_since,
                       SUM(CASE WHEN t.state = 'pending' AND NOT {no_deps} THEN 1 ELSE 0 END)
                         AS pending_deps,
                       SUM(CASE WHEN t.state IN {_FINAL} AND {left_at} >= :since
                                THEN 1 ELSE 0 END) AS outflow
                FROM {{tasks}} t
                WHERE t.phase IS NOT NULL AND t.phase <> ''
                  AND (t.state IN ('running', 'pending')
                       OR (t.state IN {_FINAL} AND {left_at} >= :since))
                GROUP BY t.phase
                HAVING SUM(CASE WHEN t.state IN ('running', 'pending') THEN 1 ELSE 0 END) > 0
                ORDER BY t.phase""",
            {"since": self.ago(window)},
        )

    def pending_with_dependencies(self, phase: str, limit: int) -> list[Row]:
        """The oldest ``limit`` pending tasks of ``phase`` that have dependencies."""
        return self.rows(
            f"""SELECT t.id, t.created_at, t.depends_on
                FROM {{tasks}} t
                WHERE t.phase = :phase AND {self.may_be("t", "pending")} AND t.state = 'pending'
                  AND t.depends_on IS NOT NULL AND t.depends_on NOT IN ('', '[]')
                ORDER BY t.created_at, t.id
                LIMIT {int(limit)}""",
            {"phase": phase},
        )

    def phase_last_outflow(self, phase: str) -> str | None:
        """When a task of ``phase`` last finished (in any way) at or before ``now``."""
        value = self.scalar(
            f"""SELECT MAX(COALESCE(t.finished_at, t.updated_at, t.created_at))
                FROM {{tasks}} t WHERE t.phase = :phase AND t.state IN {_FINAL}""",
            {"phase": phase},
        )
        return str(value) if value is not None else None

    def phase_outflow_by_hour_of_week(
        self, phase: str, since: str, until: str
    ) -> tuple[list[Row], str | None]:
        """Tasks of ``phase`` that finished (in any way) in ``[since, until)``, per hour of week.

        Rows: ``hour_of_week`` (0-167: whole UTC hours since the Unix epoch, modulo
        168, so 0 is Thursday 00:00 UTC) and ``outflow``. Also returns when the
        phase's first task was created (None when it has none), so a caller can
        tell how much of the span the phase existed for.
        """
        left_at = "COALESCE(t.finished_at, t.updated_at, t.created_at)"
        hour = self.dialect.hour_index(left_at)
        rows = self.rows(
            f"""SELECT ({hour}) % 168 AS hour_of_week, COUNT(*) AS outflow
                FROM {{tasks}} t
                WHERE t.phase = :phase AND t.state IN {_FINAL}
                  AND {left_at} >= :since AND {left_at} < :until
                GROUP BY ({hour}) % 168
                ORDER BY hour_of_week""",
            {"phase": phase, "since": since, "until": until},
        )
        first = self.scalar(
            "SELECT MIN(t.created_at) FROM {tasks} t WHERE t.phase = :phase", {"phase": phase}
        )
        return rows, (str(first) if first is not None else None)

    def timeout_failures(
        self, window: timedelta, baseline: timedelta, patterns: Sequence[str]
    ) -> list[Row]:
        """Runs, failures and timeout failures per task_type, in ``window`` and the baseline before.

        A failure is a timeout when its error text contains one of ``patterns``
        (lower-case), matched case-insensitively.
        """
        params: dict[str, Any] = {
            "recent": self.ago(window),
            "base": self.ago(window + baseline),
        }
        likes = []
        for i, pattern in enumerate(patterns):
            params[f"p{i}"] = pattern.lower()
            likes.append(f"LOWER(m.error) LIKE '%' || :p{i} || '%'")
        is_timeout = f"(m.status = 'failed' AND m.error IS NOT NULL AND ({' OR '.join(likes)}))"
        is_recent = "m.created_at >= :recent"
        return self.rows(
            f"""SELECT m.task_type,
                  SUM(CASE WHEN {is_recent} THEN 1 ELSE 0 END) AS recent_runs,
                  SUM(CASE WHEN {is_recent} AND m.status = 'failed' THEN 1 ELSE 0 END)
                    AS recent_failures,
                  SUM(CASE WHEN {is_recent} AND {is_timeout} THEN 1 ELSE 0 END) AS recent_timeouts,
                  SUM(CASE WHEN NOT ({is_recent}) THEN 1 ELSE 0 END) AS base_runs,
                  SUM(CASE WHEN NOT ({is_recent}) AND m.status = 'failed' THEN 1 ELSE 0 END)
                    AS base_failures,
                  SUM(CASE WHEN NOT ({is_recent}) AND {is_timeout} THEN 1 ELSE 0 END)
                    AS base_timeouts,
                  MAX(CASE WHEN {is_recent} AND {is_timeout} THEN m.error END) AS sample_error
                FROM {{metrics}} m
                WHERE m.created_at >= :base AND m.task_type IS NOT NULL AND m.task_type <> ''
                GROUP BY m.task_type
                ORDER BY m.task_type""",
            params,
        )

    def failed_task_attempts(self, min_attempts: int) -> list[Row]:
        """Tasks failed at ``now`` after at least ``min_attempts`` attempts."""
        return self.rows(
            """SELECT t.id, t.title, t.task_type, t.phase, t.executor, t.model, t.attempts,
                      t.error, COALESCE(t.finished_at, t.updated_at, t.created_at) AS failed_at
               FROM {tasks} t
               WHERE t.state = 'failed' AND t.attempts >= :n
               ORDER BY t.id""",
            {"n": min_attempts},
        )

    def repeated_metric_failures(self, min_failures: int) -> list[Row]:
        """Tasks whose runs failed ``min_failures`` times since their last success, still open.

        ``error`` is the latest error text any of those runs gave.

        A task that completed or was cancelled by ``now`` is left out, as is one
        whose latest recorded run succeeded.
        """
        return self.rows(
            # A failure counts when no success of the task came after it: a seek on
            # the (task_id, created_at) key per failed run, instead of grouping every
            # successful run in history to find each task's last success.
            """WITH f AS (
                  SELECT m.task_id, COUNT(*) AS failures, MIN(m.created_at) AS first_failed_at,
                         MAX(m.created_at) AS failed_at, MAX(m.task_type) AS task_type,
                         MAX(m.executor) AS executor, MAX(m.model) AS model
                  FROM {metrics} m
                  WHERE m.status = 'failed'
                    AND NOT EXISTS (SELECT 1 FROM {metrics} ok
                                    WHERE ok.task_id = m.task_id AND ok.status = 'completed'
                                      AND ok.created_at > m.created_at)
                  GROUP BY m.task_id
                  HAVING COUNT(*) >= :n
                )
                SELECT f.task_id AS id, t.title, COALESCE(t.task_type, f.task_type) AS task_type,
                       t.phase, COALESCE(t.executor, f.executor) AS executor,
                       COALESCE(t.model, f.model) AS model, t.state, f.failures,
                       f.first_failed_at, f.failed_at,
                       (SELECT m2.error FROM {metrics} m2
                        WHERE m2.task_id = f.task_id AND m2.status = 'failed'
                          AND m2.error IS NOT NULL
                        ORDER BY m2.created_at DESC LIMIT 1) AS error
                FROM f LEFT JOIN {tasks} t ON t.id = f.task_id
                WHERE t.state IS NULL OR t.state NOT IN ('completed', 'cancelled')
                ORDER BY f.task_id""",
            {"n": min_failures},
        )

    def failure_cells(self, window: timedelta) -> list[Row]:
        """Runs and failures per (executor, model, task_type) in ``window``; NULL names as ''.

        Rows: ``executor``, ``model``, ``task_type``, ``runs``, ``failures``,
        ``first_at``, ``last_at`` and one ``sample_error``. Cells are few, and
        callers need them to tell a failing executor from a failing model it
        happens to run, or from a task type that fails wherever it runs.
        """
        return self.rows(
            """SELECT COALESCE(m.executor, '') AS executor, COALESCE(m.model, '') AS model,
                      COALESCE(m.task_type, '') AS task_type,
                      COUNT(*) AS runs,
                      SUM(CASE WHEN m.status = 'failed' THEN 1 ELSE 0 END) AS failures,
                      MIN(m.created_at) AS first_at, MAX(m.created_at) AS last_at,
                      MAX(CASE WHEN m.status = 'failed' THEN m.error END) AS sample_error
               FROM {metrics} m
               WHERE m.created_at >= :since
               GROUP BY COALESCE(m.executor, ''), COALESCE(m.model, ''),
                        COALESCE(m.task_type, '')
               ORDER BY executor, model, task_type""",
            {"since": self.ago(window)},
        )
