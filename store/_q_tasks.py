"""Queries over backlog tasks as of ``now``."""

from __future__ import annotations

from datetime import timedelta

from store._q_base import QueryBase, Row


class TaskQueries(QueryBase):
    """Queries over ``{tasks}``: the backlog as it stood at ``now``."""

    def idle_pending_tasks(self, idle_for: timedelta) -> list[Row]:
        """Pending tasks with no activity for at least ``idle_for``, oldest first."""
        return self.rows(
            """SELECT id, title, priority, labels, source, task_type, phase, created_at,
                      last_activity, goal_id
               FROM {tasks}
               WHERE state = 'pending' AND last_activity <= :cutoff
               ORDER BY last_activity, id""",
            {"cutoff": self.ago(idle_for)},
        )

    def task_states(self, ids: list[str]) -> dict[str, str]:
        """The as-of state of each given task id that exists at ``now``."""
        if not ids:
            return {}
        marks = ", ".join(f":id{i}" for i in range(len(ids)))
        params = {f"id{i}": v for i, v in enumerate(ids)}
        rows = self.rows(f"SELECT id, state FROM {{tasks}} WHERE id IN ({marks})", params)
        return {r["id"]: r["state"] for r in rows}
