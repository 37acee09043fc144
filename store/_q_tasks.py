"""Queries over backlog tasks as of ``now``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from store._q_base import QueryBase, Row

# Priorities as numbers, so SQL can say "lower or equal"; a missing one is normal.
_RANK = """CASE COALESCE({t}.priority, 'normal') WHEN 'critical' THEN 3 WHEN 'high' THEN 2
           WHEN 'low' THEN 0 ELSE 1 END"""

# When a task started: its start time, or for a finished task that never
# recorded one, its finish (it cannot have finished without starting).
_STARTED = """CASE WHEN {t}.started_at IS NOT NULL THEN {t}.started_at
                   WHEN {t}.status IN ('completed', 'failed') THEN {t}.finished_at END"""

# Tasks newer than `p` and no more urgent, that started after `p` existed:
# each one is a time a worker picked other work over `p`.
_AHEAD = f"""SELECT n.id, n.title, n.priority, n.created_at, n.started, n.rank, n.task_type,
           n.phase
    FROM (SELECT id, title, priority, created_at, state, {_STARTED.format(t="t")} AS started,
                 {_RANK.format(t="t")} AS rank, COALESCE(task_type, '') AS task_type,
                 COALESCE(phase, '') AS phase
          FROM {{tasks}} t) n
    WHERE n.state <> 'pending' AND n.started <= :now"""

# Only work `p` competes for passes it: the same task_type, and the same phase
# when both have one. A start in another phase says nothing about `p`'s workers.
_COMPETES = """n.task_type = COALESCE(p.task_type, '')
     AND (n.phase = '' OR COALESCE(p.phase, '') = '' OR n.phase = p.phase)"""


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

    def open_task_texts(self, max_description: int) -> Iterator[Row]:
        """Pending and running tasks with the text and links that duplicate detection compares.

        Descriptions are cut to ``max_description`` characters in the database:
        the opening says what a task is about, and the rest only costs memory.
        """
        cut = int(max_description)
        return self.iter_rows(
            f"""SELECT id, title, substr(COALESCE(description, ''), 1, {cut}) AS description,
                       task_type, spec, depends_on, labels, source, state, priority, created_at
                FROM {{tasks}}
                WHERE state IN ('pending', 'running')
                ORDER BY created_at, id"""
        )

    def passed_over_tasks(self, waiting_since: timedelta, min_passed: int) -> list[Row]:
        """Pending tasks waiting ``waiting_since`` or longer that ``min_passed`` or more newer,
        no more urgent tasks competing for the same work started ahead of, counted from each
        task's creation. Competing: the same task_type, and the same phase when both have one.
        """
        return self.rows(
            f"""SELECT p.id, p.title, p.priority, p.task_type, p.labels, p.source,
                       p.depends_on, p.created_at, COUNT(*) AS passed
                FROM {{tasks}} p
                JOIN ({_AHEAD}) n
                  ON n.created_at > p.created_at AND n.started >= p.created_at
                 AND n.rank <= {_RANK.format(t="p")} AND {_COMPETES}
                WHERE p.state = 'pending' AND p.created_at <= :cutoff
                GROUP BY p.id, p.title, p.priority, p.task_type, p.labels, p.source,
                         p.depends_on, p.created_at
                HAVING COUNT(*) >= :min_passed
                ORDER BY p.created_at, p.id""",
            {"cutoff": self.ago(waiting_since), "min_passed": int(min_passed)},
        )

    def started_ahead_of(self, task_id: str, since: str, limit: int) -> tuple[int, list[Row]]:
        """How many newer, no more urgent tasks competing for the same work started ahead of
        a task since ``since``, and the first ``limit`` of them in start order.
        """
        sql = f"""SELECT n.id, n.title, n.priority, n.created_at, n.started AS started_at
            FROM {{tasks}} p JOIN ({_AHEAD}) n
              ON n.created_at > p.created_at AND n.started >= :since
             AND n.rank <= {_RANK.format(t="p")} AND {_COMPETES}
            WHERE p.id = :task_id"""
        params = {"task_id": task_id, "since": since}
        count = self.scalar(f"SELECT COUNT(*) FROM ({sql}) ahead", params)
        sample = self.rows(f"{sql} ORDER BY n.started, n.id LIMIT {int(limit)}", params)
        return int(count or 0), sample

    def task_progress(self, ids: list[str]) -> dict[str, Row]:
        """The as-of state and finish time of each given task id that exists at ``now``."""
        if not ids:
            return {}
        marks = ", ".join(f":id{i}" for i in range(len(ids)))
        params = {f"id{i}": v for i, v in enumerate(ids)}
        rows = self.rows(
            "SELECT id, state, COALESCE(finished_at, updated_at, created_at) AS finished_at"
            f" FROM {{tasks}} WHERE id IN ({marks})",
            params,
        )
        return {r["id"]: r for r in rows}
