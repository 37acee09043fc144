"""Queries for goal progress (Phase 3): counts and blockers of the tasks a goal links."""

from __future__ import annotations

import json
from typing import Any

from store._q_base import QueryBase, Row


def goal_link(
    goal_id: str, label: str | None = None, spec: str | None = None, task_type: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The condition on ``{tasks}`` rows that a goal links, and its parameters.

    A task belongs to a goal when its ``goal_id`` names the goal, or when the
    goal has a selector and the task matches every part of it (has the label,
    implements the spec, is of the task type).
    """
    params: dict[str, Any] = {"g_id": goal_id}
    parts = []
    if label is not None:
        # labels is JSON text; match the label's JSON string form, LIKE-escaped.
        quoted = json.dumps(label).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        parts.append("labels LIKE :g_label ESCAPE '\\'")
        params["g_label"] = f"%{quoted}%"
    if spec is not None:
        parts.append("spec = :g_spec")
        params["g_spec"] = spec
    if task_type is not None:
        parts.append("task_type = :g_type")
        params["g_type"] = task_type
    if not parts:
        return "goal_id = :g_id", params
    return f"(goal_id = :g_id OR ({' AND '.join(parts)}))", params


class GoalQueries(QueryBase):
    """Aggregates over ``{tasks}`` as of ``now``; small results only."""

    def goal_counts(self, link: tuple[str, dict[str, Any]], rate_since: str) -> Row:
        """Linked tasks by state, completions since ``rate_since``, and the latest progress."""
        where, params = link
        done_at = "COALESCE(finished_at, updated_at, created_at)"
        rows = self.rows(
            f"""SELECT COUNT(*) AS linked,
                   SUM(CASE WHEN state = 'completed' THEN 1 ELSE 0 END) AS completed,
                   SUM(CASE WHEN state = 'running' THEN 1 ELSE 0 END) AS running,
                   SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END) AS pending,
                   SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END) AS failed,
                   SUM(CASE WHEN state = 'cancelled' THEN 1 ELSE 0 END) AS cancelled,
                   SUM(CASE WHEN state = 'completed' AND {done_at} > :rate_since
                       THEN 1 ELSE 0 END) AS completed_recent,
                   MAX(CASE WHEN state = 'completed' THEN {done_at} END) AS last_completed_at,
                   MAX(CASE WHEN started_at <= :now THEN started_at END) AS last_started_at,
                   MIN(created_at) AS first_created_at
                FROM {{tasks}} WHERE {where}""",
            {**params, "rate_since": rate_since},
        )
        row = rows[0]
        for key in ("completed", "running", "pending", "failed", "cancelled", "completed_recent"):
            row[key] = int(row[key] or 0)
        row["linked"] = int(row["linked"] or 0)
        return row

    def goal_blockers(
        self, link: tuple[str, dict[str, Any]], stuck_before: str, limit: int
    ) -> list[Row]:
        """Linked tasks that hold a goal up: failed, running without activity, or with deps.

        Pending tasks are returned when they declare dependencies; the caller
        checks whether those are done (``task_states``).
        """
        where, params = link
        return self.rows(
            f"""SELECT id, title, state, depends_on, last_activity, error, attempts
                FROM {{tasks}}
                WHERE {where} AND (
                    state = 'failed'
                    OR (state = 'running' AND last_activity <= :stuck_before)
                    OR (state = 'pending' AND depends_on IS NOT NULL
                        AND depends_on NOT IN ('', '[]')))
                ORDER BY CASE state WHEN 'failed' THEN 0 WHEN 'running' THEN 1 ELSE 2 END,
                         last_activity, id
                LIMIT :limit""",
            {**params, "stuck_before": stuck_before, "limit": limit},
        )

    def stored_goals(self) -> list[Row]:
        """Goals defined over the API (``reviewer_goals``) that existed at ``now``."""
        return self.rows(
            """SELECT id, title, target, deadline, label, spec, task_type
               FROM reviewer_goals WHERE created_at <= :now ORDER BY id"""
        )
