"""Queries for spec-drift: the tasks that implement each spec."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from store._q_base import QueryBase, Row

# When a completed task carries no finished_at, its state was rebuilt from the
# next timestamp it has (see ``_tasks_as_of``); use the same one as its finish.
# Every ``{tasks}`` gets an alias: PostgreSQL 15 requires one on a subquery in FROM.
_FINISHED = "COALESCE(finished_at, updated_at, created_at)"


def _in_list(name: str, values: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """A portable ``IN (...)`` of bound parameters; ``(NULL)`` matches nothing."""
    if not values:
        return "(NULL)", {}
    params = {f"{name}{i}": v for i, v in enumerate(values)}
    return "(" + ", ".join(f":{k}" for k in params) + ")", params


class SpecQueries(QueryBase):
    """Aggregates in SQL over the as-of relations; small results only."""

    def spec_task_rollup(self, impl_types: Sequence[str]) -> list[Row]:
        """One row per distinct ``tasks.spec`` value: completed tasks, impl among them, last finish.

        Columns: ``spec``, ``completed``, ``completed_impl``, ``last_finished``
        (the latest finish of a completed task of any type), ``last_task``
        (a task that finished then). Specs with no completed task are left out.
        """
        types, params = _in_list("type", impl_types)
        return self.rows(
            f"""SELECT t.spec,
                       COUNT(*) AS completed,
                       SUM(CASE WHEN t.task_type IN {types} THEN 1 ELSE 0 END) AS completed_impl,
                       MAX({_FINISHED}) AS last_finished,
                       MAX(CASE WHEN {_FINISHED} = last.at THEN t.id END) AS last_task
                FROM {{tasks}} t
                JOIN (SELECT s.spec, MAX({_FINISHED}) AS at FROM {{tasks}} s
                      WHERE s.state = 'completed' AND s.spec IS NOT NULL AND s.spec <> ''
                      GROUP BY s.spec) last ON last.spec = t.spec
                WHERE t.state = 'completed'
                GROUP BY t.spec
                ORDER BY t.spec""",
            params,
        )

    def completed_spec_tasks(
        self, specs: Sequence[str], impl_types: Sequence[str], after: str | None = None
    ) -> list[Row]:
        """Completed impl tasks whose ``spec`` is one of ``specs``, finished after ``after``.

        Columns: ``id``, ``title``, ``spec``, ``task_type``, ``finished_at`` and
        ``files_changed`` (JSON text), oldest first.
        """
        spec_in, params = _in_list("spec", specs)
        type_in, type_params = _in_list("type", impl_types)
        return self.rows(
            f"""SELECT id, title, spec, task_type, {_FINISHED} AS finished_at, files_changed
                FROM {{tasks}} t
                WHERE state = 'completed' AND spec IN {spec_in} AND task_type IN {type_in}
                  AND {_FINISHED} > :after
                ORDER BY {_FINISHED}, id""",
            {**params, **type_params, "after": after or ""},
        )
