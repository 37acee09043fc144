"""Queries for backlog-hygiene: failures by error text, oversized and criteria-less items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from store._q_base import QueryBase, Row
from store._q_specs import _in_list

# A JSON list of paths has two quotes per item: its length without parsing
# JSON, the same on SQLite and PostgreSQL (a path with a quote in it is rare).
_FILES = """CASE WHEN {c} IS NULL THEN 0
    ELSE (LENGTH({c}) - LENGTH(REPLACE({c}, '"', ''))) / 2 END"""
_DONE_AT = "COALESCE(finished_at, updated_at, created_at)"


def _like_any(column: str, name: str, needles: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """``(LOWER(column) LIKE ... OR ...)`` for lower-cased needles, LIKE-escaped."""
    if not needles:
        return "(1 = 0)", {}
    params = {}
    for i, needle in enumerate(needles):
        escaped = needle.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params[f"{name}{i}"] = f"%{escaped}%"
    ors = " OR ".join(f"LOWER(COALESCE({column}, '')) LIKE :{k} ESCAPE '\\'" for k in params)
    return f"({ors})", params


class HygieneQueries(QueryBase):
    """Grouped and filtered reads; the rule normalises error texts itself."""

    def failure_texts(self, since: str, max_chars: int) -> list[Row]:
        """Failed executions since ``since`` grouped by task type, model, task and error text.

        One row per task, executor and text (a task's repeated identical failures
        are one row), the text cut to ``max_chars`` in the database. Columns:
        ``task_type``, ``model``, ``executor``, ``task_id``, ``error``, ``failures``,
        ``duration`` (sum of seconds), ``last_at``.
        """
        cut = int(max_chars)
        return self.rows(
            f"""SELECT COALESCE(task_type, '') AS task_type, COALESCE(model, '') AS model,
                       COALESCE(executor, '') AS executor,
                       task_id, substr(error, 1, {cut}) AS error, COUNT(*) AS failures,
                       SUM(COALESCE(duration_seconds, 0)) AS duration, MAX(created_at) AS last_at
                FROM {{metrics}}
                WHERE status = 'failed' AND error IS NOT NULL AND error <> ''
                  AND created_at > :since
                GROUP BY COALESCE(task_type, ''), COALESCE(model, ''), COALESCE(executor, ''),
                         task_id, substr(error, 1, {cut})
                ORDER BY 1, 4, 2, 3, 5""",
            {"since": since},
        )

    def run_profile(self, since: str) -> list[Row]:
        """Executions since ``since`` by task type, status, model and executor: runs, seconds."""
        return self.rows(
            """SELECT COALESCE(task_type, '') AS task_type, status, COALESCE(model, '') AS model,
                      COALESCE(executor, '') AS executor,
                      COUNT(*) AS runs, SUM(COALESCE(duration_seconds, 0)) AS duration
               FROM {metrics} WHERE created_at > :since
               GROUP BY COALESCE(task_type, ''), status, COALESCE(model, ''),
                        COALESCE(executor, '')
               ORDER BY 1, 2, 3, 4""",
            {"since": since},
        )

    def files_profile(self, since: str) -> list[Row]:
        """Tasks that ended since ``since`` by type and state: how many, mean files changed."""
        return self.rows(
            f"""SELECT COALESCE(task_type, '') AS task_type, state, COUNT(*) AS tasks,
                       AVG({_FILES.format(c="files_changed")}) AS mean_files
                FROM {{tasks}}
                WHERE state IN ('completed', 'failed') AND {_DONE_AT} > :since
                GROUP BY COALESCE(task_type, ''), state ORDER BY 1, 2""",
            {"since": since},
        )

    def long_pending_tasks(self, min_chars: int) -> list[Row]:
        """Pending tasks whose description has at least ``min_chars`` characters."""
        return self.rows(
            """SELECT id, title, description, task_type, priority, source, labels, created_at
               FROM {tasks}
               WHERE state = 'pending' AND LENGTH(COALESCE(description, '')) >= :min_chars
               ORDER BY created_at, id""",
            {"min_chars": int(min_chars)},
        )

    def timed_out_tasks(self, needles: Sequence[str], min_timeouts: int) -> list[Row]:
        """Open tasks (pending, running) whose executions timed out repeatedly.

        A timeout is a failed execution whose error contains one of ``needles``.
        """
        like, params = _like_any("m.error", "to", needles)
        return self.rows(
            f"""SELECT t.id, t.title, t.description, t.task_type, t.priority, t.source,
                       t.labels, t.created_at, COUNT(*) AS timeouts
                FROM {{metrics}} m JOIN {{tasks}} t ON t.id = m.task_id
                WHERE m.status = 'failed' AND t.state IN ('pending', 'running')
                  AND {like}
                GROUP BY t.id, t.title, t.description, t.task_type, t.priority, t.source,
                         t.labels, t.created_at
                HAVING COUNT(*) >= :min_timeouts
                ORDER BY t.created_at, t.id""",
            {**params, "min_timeouts": int(min_timeouts)},
        )

    def description_sizes(self) -> dict[str, Row]:
        """Per task type, the completed tasks and their mean description length in characters."""
        rows = self.rows(
            """SELECT COALESCE(task_type, '') AS task_type, COUNT(*) AS tasks,
                      AVG(LENGTH(COALESCE(description, ''))) AS mean_chars
               FROM {tasks} WHERE state = 'completed'
               GROUP BY COALESCE(task_type, '') ORDER BY 1"""
        )
        return {r["task_type"]: r for r in rows}

    def tasks_without(
        self, markers: Sequence[str], task_types: Sequence[str], created_before: str
    ) -> list[Row]:
        """Pending tasks of ``task_types`` with no spec, created by then, whose text has none of
        ``markers`` (case-insensitive). Columns as ``long_pending_tasks`` minus description.
        """
        like, params = _like_any("description", "mk", markers)
        types, type_params = _in_list("ty", task_types)
        return self.rows(
            f"""SELECT id, title, task_type, priority, source, labels, created_at
                FROM {{tasks}}
                WHERE state = 'pending' AND task_type IN {types} AND created_at <= :before
                  AND (spec IS NULL OR spec = '') AND NOT {like}
                ORDER BY created_at, id""",
            {**params, **type_params, "before": created_before},
        )

    def marker_share(self, markers: Sequence[str], task_types: Sequence[str]) -> dict[str, Row]:
        """Per task type, the tasks (any state) and how many of them carry one of ``markers``."""
        like, params = _like_any("description", "mk", markers)
        types, type_params = _in_list("ty", task_types)
        rows = self.rows(
            f"""SELECT task_type, COUNT(*) AS tasks,
                       SUM(CASE WHEN {like} THEN 1 ELSE 0 END) AS with_markers
                FROM {{tasks}} WHERE task_type IN {types}
                GROUP BY task_type ORDER BY 1""",
            {**params, **type_params},
        )
        return {r["task_type"]: r for r in rows}

    def low_value_tasks(self, priorities: Sequence[str], idle_before: str) -> list[Row]:
        """Pending tasks of ``priorities`` with a goal, idle since ``idle_before``, and their goal.

        ``goal_state`` is the state of a task whose id is the goal id (None when
        there is none); ``done``, ``cancelled`` and ``open_other`` count the
        goal's other linked tasks (completed; cancelled; pending, running or
        failed and not of ``priorities``), ``last_done`` is their latest end.
        """
        prio, params = _in_list("pr", priorities)
        return self.rows(
            f"""SELECT p.id, p.title, p.priority, p.goal_id, p.source, p.labels, p.created_at,
                       p.last_activity, g.state AS goal_state,
                       COALESCE(s.done, 0) AS done, COALESCE(s.cancelled, 0) AS cancelled,
                       COALESCE(s.open_other, 0) AS open_other, s.last_done
                FROM {{tasks}} p
                LEFT JOIN {{tasks}} g ON g.id = p.goal_id
                LEFT JOIN (
                    SELECT goal_id,
                           SUM(CASE WHEN state = 'completed' THEN 1 ELSE 0 END) AS done,
                           SUM(CASE WHEN state = 'cancelled' THEN 1 ELSE 0 END) AS cancelled,
                           SUM(CASE WHEN state IN ('pending', 'running', 'failed')
                                     AND COALESCE(priority, 'normal') NOT IN {prio}
                                    THEN 1 ELSE 0 END) AS open_other,
                           MAX(CASE WHEN state IN ('completed', 'cancelled')
                                    THEN {_DONE_AT} END) AS last_done
                    FROM {{tasks}} WHERE goal_id IS NOT NULL AND goal_id <> ''
                    GROUP BY goal_id) s ON s.goal_id = p.goal_id
                WHERE p.state = 'pending' AND COALESCE(p.priority, 'normal') IN {prio}
                  AND p.goal_id IS NOT NULL AND p.goal_id <> ''
                  AND p.last_activity <= :idle_before
                ORDER BY p.goal_id, p.created_at, p.id""",
            {**params, "idle_before": idle_before},
        )
