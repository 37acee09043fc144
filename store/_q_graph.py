"""Queries for priorities: the dependency graph of the open backlog, as of ``now``."""

from __future__ import annotations

from collections.abc import Sequence

from store._q_base import QueryBase, Row
from store._q_specs import _in_list

# How long ago a task ended, for "blocked since": its finish, else its last update.
_ENDED = "COALESCE(finished_at, updated_at, created_at)"


class GraphQueries(QueryBase):
    """The edges of the open backlog and the few facts about the tasks they name."""

    def open_dependents(self) -> list[Row]:
        """Pending and running tasks that declare dependencies, with what ranks them.

        Columns: ``id``, ``title``, ``state``, ``priority``, ``goal_id``,
        ``task_type``, ``source``, ``depends_on`` (JSON text), oldest first.
        """
        return self.rows(
            """SELECT id, title, state, COALESCE(priority, 'normal') AS priority, goal_id,
                      task_type, source, depends_on
               FROM {tasks}
               WHERE state IN ('pending', 'running')
                 AND depends_on IS NOT NULL AND depends_on NOT IN ('', '[]')
               ORDER BY created_at, id"""
        )

    def task_briefs(self, ids: Sequence[str]) -> dict[str, Row]:
        """State, priority, title, goal and end time of each given id that exists at ``now``.

        Ids that are not returned do not exist (yet) as of ``now``.
        """
        out: dict[str, Row] = {}
        unique = sorted(set(ids))
        # Bounded IN lists: a backlog with thousands of edges asks in a few rounds.
        for start in range(0, len(unique), 500):
            marks, params = _in_list("tid", unique[start : start + 500])
            for row in self.rows(
                f"""SELECT id, title, state, COALESCE(priority, 'normal') AS priority, goal_id,
                           error, {_ENDED} AS ended_at
                    FROM {{tasks}} WHERE id IN {marks}""",
                params,
            ):
                out[row["id"]] = row
        return out
