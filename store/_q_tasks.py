"""Queries over backlog tasks as of ``now``."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from datetime import timedelta

from store._q_base import QueryBase, Row
from store._valid import readable


# Priorities as numbers, so SQL can say "lower or equal"; a missing one is normal.
def _rank(priority: str) -> str:
    return f"""CASE COALESCE({priority}, 'normal') WHEN 'critical' THEN 3 WHEN 'high' THEN 2
           WHEN 'low' THEN 0 ELSE 1 END"""


# When a task started: its start time, or for a finished task that never
# recorded one, its finish (it cannot have finished without starting).
_STARTED = """CASE WHEN {t}.started_at IS NOT NULL THEN {t}.started_at
                   WHEN {t}.status IN ('completed', 'failed') THEN {t}.finished_at END"""


def _state(t: str) -> str:
    """The as-of state of row ``t`` of ``tasks`` (as in ``{tasks}``, without its join)."""
    return f"""CASE
        WHEN {t}.status IN ('completed', 'failed', 'cancelled')
             AND COALESCE({t}.finished_at, {t}.updated_at, {t}.created_at) <= :now THEN {t}.status
        WHEN {t}.status IN ('completed', 'failed', 'cancelled', 'running')
             AND COALESCE({t}.started_at, {t}.updated_at, {t}.created_at) <= :now THEN 'running'
        WHEN {t}.status IN ('completed', 'failed', 'cancelled', 'running') THEN 'pending'
        ELSE {t}.status END"""


def _ahead_of(p: str | None, since: str, columns: str = "n.id", ok: str = "1 = 1") -> str:
    """Tasks ``n`` newer than ``p`` and no more urgent, competing for its work, that started
    after ``since`` and by ``now``: each one is a time a worker picked other work over ``p``.

    ``p`` is an alias of a row with the task's columns, or None for ``:p_*`` parameters.
    Read straight from ``tasks`` by its created-at index (``{tasks}`` would rebuild every
    row's state first). Competing: the same task_type, and the same phase when both have one.
    """

    def col(name: str) -> str:
        return f"{p}.{name}" if p else f":p_{name}"

    started = _STARTED.format(t="n")
    return f"""SELECT {columns} FROM tasks n
        WHERE n.created_at > {col("created_at")} AND n.created_at <= :now AND {ok}
          AND {_state("n")} <> 'pending'
          AND {started} <= :now AND {started} >= {since}
          AND {_rank("n.priority")} <= {_rank(col("priority"))}
          AND COALESCE(n.task_type, '') = COALESCE({col("task_type")}, '')
          AND (COALESCE(n.phase, '') = '' OR COALESCE({col("phase")}, '') = ''
               OR n.phase = {col("phase")})"""


class TaskQueries(QueryBase):
    """Queries over ``{tasks}``: the backlog as it stood at ``now``."""

    def idle_pending_tasks(self, idle_for: timedelta) -> list[Row]:
        """Pending tasks with no activity for at least ``idle_for``, oldest first."""
        return self.rows(
            f"""SELECT t.id, t.title, t.priority, t.labels, t.source, t.task_type, t.phase,
                       t.created_at, t.last_activity, t.goal_id
               FROM {{tasks}} t
               WHERE {self.may_be("t", "pending")}
                 AND t.state = 'pending' AND t.last_activity <= :cutoff
               ORDER BY t.last_activity, t.id""",
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
            f"""SELECT t.id, t.title, substr(COALESCE(t.description, ''), 1, {cut}) AS description,
                       t.task_type, t.spec, t.depends_on, t.labels, t.source, t.state, t.priority,
                       t.created_at
                FROM {{tasks}} t
                WHERE {self.may_be("t", "pending", "running")}
                  AND t.state IN ('pending', 'running')
                ORDER BY t.created_at, t.id"""
        )

    def passed_over_tasks(self, waiting_since: timedelta, min_passed: int) -> list[Row]:
        """Pending tasks waiting ``waiting_since`` or longer that ``min_passed`` or more newer,
        no more urgent tasks competing for the same work started ahead of, counted from each
        task's creation. Competing: the same task_type, and the same phase when both have one.

        Each candidate walks the created-at index over newer tasks and stops at the
        ``min_passed``-th competitor, so the cost grows with the candidates, not with
        candidates times the backlog behind them.
        """
        need = max(int(min_passed), 1)
        ok = readable(self.dialect, "tasks", "n")
        return self.rows(
            f"""SELECT p.id, p.title, p.priority, p.task_type, p.labels, p.source,
                       p.depends_on, p.created_at
                FROM {{tasks}} p
                WHERE {self.may_be("p", "pending")}
                  AND p.state = 'pending' AND p.created_at <= :cutoff
                  AND EXISTS ({_ahead_of("p", "p.created_at", ok=ok)}
                              ORDER BY n.created_at LIMIT 1 OFFSET {need - 1})
                ORDER BY p.created_at, p.id""",
            {"cutoff": self.ago(waiting_since)},
        )

    def started_ahead_of(self, task_id: str, since: str, limit: int) -> tuple[int, list[Row]]:
        """How many newer, no more urgent tasks competing for the same work started ahead of
        a task since ``since``, and the first ``limit`` of them in start order.
        """
        return self.started_ahead_of_many({task_id: since}, limit).get(task_id, (0, []))

    def started_ahead_of_many(
        self, since: dict[str, str], limit: int
    ) -> dict[str, tuple[int, list[Row]]]:
        """``started_ahead_of`` for many tasks (id -> since) at once.

        The counts come from one pass over the tasks newer than the oldest of them,
        in creation order, with one Fenwick tree over the ``since`` instants per kind
        of competitor: linear in the backlog, however many tasks are asked about
        (counting each task's passers separately costs tasks x backlog). The samples
        walk the start-time index from each ``since`` and stop after ``limit``.
        """
        if not since:
            return {}
        ids = list(since)
        marks = ", ".join(f":id{i}" for i in range(len(ids)))
        found = self.rows(
            f"""SELECT id, created_at, priority, COALESCE(task_type, '') AS task_type,
                       COALESCE(phase, '') AS phase, {_rank("priority")} AS rank
                FROM tasks WHERE id IN ({marks}) AND created_at <= :now
                  AND {readable(self.dialect, "tasks")}""",
            {f"id{i}": v for i, v in enumerate(ids)},
        )
        if not found:
            return {}
        counts = self._count_ahead(found, since)
        columns = f"n.id, n.title, n.priority, n.created_at, {_STARTED.format(t='n')} AS started_at"
        sample_sql = f"""{_ahead_of(None, ":since", columns, readable(self.dialect, "tasks", "n"))}
            ORDER BY {_STARTED.format(t="n")}, n.id LIMIT {int(limit)}"""
        out: dict[str, tuple[int, list[Row]]] = {}
        for task in found:
            params = {
                "p_created_at": task["created_at"],
                "p_priority": task["priority"],
                "p_task_type": task["task_type"],
                "p_phase": task["phase"],
                "since": since[task["id"]],
            }
            out[task["id"]] = (counts[task["id"]], self.rows(sample_sql, params))
        return out

    def _count_ahead(self, found: list[Row], since: dict[str, str]) -> dict[str, int]:
        instants = sorted({since[t["id"]] for t in found})
        # One tree per kind of competitor: (task_type, phase, rank).
        trees: dict[tuple[str, str, int], _SuffixCounts] = {}
        waiting = sorted(found, key=lambda t: t["created_at"], reverse=True)
        counts: dict[str, int] = {}

        def answer(task: Row) -> None:
            at = bisect_left(instants, since[task["id"]])
            counts[task["id"]] = sum(
                tree.from_index(at)
                for (kind, phase, rank), tree in trees.items()
                if kind == task["task_type"]
                and rank <= task["rank"]
                and (phase == "" or task["phase"] == "" or phase == task["phase"])
            )

        kinds = sorted({t["task_type"] for t in found})
        marks = ", ".join(f":k{i}" for i in range(len(kinds)))
        started = _STARTED.format(t="n")
        rows = self.iter_rows(
            f"""SELECT COALESCE(n.task_type, '') AS task_type, COALESCE(n.phase, '') AS phase,
                       {_rank("n.priority")} AS rank, n.created_at, {started} AS started
                FROM tasks n
                WHERE n.created_at > :oldest AND n.created_at <= :now
                  AND {readable(self.dialect, "tasks", "n")}
                  AND {_state("n")} <> 'pending'
                  AND {started} <= :now AND {started} >= :earliest
                  AND COALESCE(n.task_type, '') IN ({marks})
                ORDER BY n.created_at DESC""",
            {
                "oldest": waiting[-1]["created_at"],
                "earliest": instants[0],
                **{f"k{i}": k for i, k in enumerate(kinds)},
            },
        )
        j = 0
        for row in rows:
            # A task counts only tasks created after it: answer before adding equals.
            while j < len(waiting) and waiting[j]["created_at"] >= row["created_at"]:
                answer(waiting[j])
                j += 1
            key = (row["task_type"], row["phase"], int(row["rank"]))
            tree = trees.get(key)
            if tree is None:
                tree = trees[key] = _SuffixCounts(len(instants))
            tree.add(bisect_right(instants, row["started"]) - 1)
        for task in waiting[j:]:
            answer(task)
        return counts

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


class _SuffixCounts:
    """Counts at positions ``0..size-1``; how many at or after a position, in O(log size)."""

    def __init__(self, size: int):
        self._size = size
        self._tree = [0] * (size + 1)

    def add(self, index: int) -> None:
        i = self._size - index  # reversed, so a suffix is a prefix
        while i <= self._size:
            self._tree[i] += 1
            i += i & -i

    def from_index(self, index: int) -> int:
        i, total = self._size - index, 0
        while i > 0:
            total += self._tree[i]
            i -= i & -i
        return total
