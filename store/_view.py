"""The read-only view of a SQL store as of one instant, shared by SQL adapters.

Rules see the pipeline only through a ``BacklogView``. Its query methods live
in per-domain mixins (``store/_q_*.py``: tasks, stuck, usage, specs, flaky,
metrics, goals, graph, hygiene, ...) and are written once, for every SQL dialect,
against three as-of relations:

``{tasks}``
    tasks created at or before ``:now``, with ``state`` (the status the task
    had at ``now``, rebuilt from its timestamps) and ``last_activity`` (the
    latest of its own timestamps at or before ``now``, not counting updates
    the reviewer made itself).
``{metrics}``
    task metrics recorded at or before ``:now``.
``{test_results}``
    test results of runs at or before ``:now``.
``{coverage}``
    per-file coverage of reports recorded at or before ``:now``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from store._dialect import Dialect
from store._q_coverage import CoverageQueries
from store._q_flaky import FlakyQueries
from store._q_goals import GoalQueries
from store._q_graph import GraphQueries
from store._q_hygiene import HygieneQueries
from store._q_metrics import MetricQueries
from store._q_reviews import ReviewQueries
from store._q_series import SeriesQueries
from store._q_specs import SpecQueries
from store._q_stuck import StuckQueries
from store._q_tasks import TaskQueries
from store._q_usage import UsageQueries
from store._valid import readable
from store.timeutil import fmt_ts, parse_ts

Row = dict[str, Any]
Fetch = Callable[[str, dict[str, Any]], Iterator[Row]]

_FINAL = "('completed', 'failed', 'cancelled')"
_STARTED = "('completed', 'failed', 'cancelled', 'running')"


def _tasks_as_of(d: Dialect) -> str:
    def seen(col: str) -> str:
        return f"COALESCE(CASE WHEN t.{col} <= :now THEN t.{col} END, t.created_at)"

    # An update the reviewer made itself (it labels the tasks it files about) is
    # not activity: fall back to the update before it.
    own_update = (
        "COALESCE(CASE WHEN t.updated_at <= :now THEN "
        "CASE WHEN rt.touched_at = t.updated_at THEN rt.previous_updated_at ELSE t.updated_at END"
        " END, t.created_at)"
    )
    last_activity = d.greatest("t.created_at", own_update, seen("started_at"), seen("finished_at"))
    state = f"""CASE
        WHEN t.status IN {_FINAL}
             AND COALESCE(t.finished_at, t.updated_at, t.created_at) <= :now THEN t.status
        WHEN t.status IN {_STARTED}
             AND COALESCE(t.started_at, t.updated_at, t.created_at) <= :now THEN 'running'
        WHEN t.status IN {_STARTED} THEN 'pending'
        ELSE t.status END"""
    # At the store's present every row passes `created_at <= :now`, yet SQLite's
    # planner (no value-aware estimates for a bound parameter) would still pick that
    # range over the indexed status/as-of conditions queries add (``may_be``); the
    # unary plus keeps the term a filter. PostgreSQL plans with the value itself.
    created = "+t.created_at" if d.name == "sqlite" else "t.created_at"
    return (
        f"(SELECT t.*, {state} AS state, {last_activity} AS last_activity"
        " FROM tasks t LEFT JOIN reviewer_task_touches rt ON rt.task_id = t.id"
        f" WHERE {created} <= :now AND {readable(d, 'tasks', 't')})"
    )


class BacklogView(
    TaskQueries,
    StuckQueries,
    UsageQueries,
    SpecQueries,
    FlakyQueries,
    MetricQueries,
    GoalQueries,
    GraphQueries,
    HygieneQueries,
    ReviewQueries,
    CoverageQueries,
    SeriesQueries,
):
    """The pipeline's records as of ``now``, read-only, for rules and reports."""

    def __init__(self, fetch: Fetch, dialect: Dialect, now: datetime, workspace: Any = None):
        self._fetch = fetch
        self.dialect = dialect
        self._now = parse_ts(now)
        self._now_ts = fmt_ts(self._now)
        self.workspace = workspace
        self._relations = {
            "tasks": _tasks_as_of(dialect),
            # Rows a direct SQL writer left unreadable are skipped (store._valid).
            "metrics": "(SELECT * FROM task_metrics WHERE created_at <= :now"
            f" AND {readable(dialect, 'task_metrics')})",
            "test_results": "(SELECT * FROM test_results WHERE ran_at <= :now"
            f" AND {readable(dialect, 'test_results')})",
            "coverage": "(SELECT * FROM coverage WHERE recorded_at <= :now"
            f" AND {readable(dialect, 'coverage')})",
        }

    @property
    def now(self) -> datetime:
        return self._now

    @property
    def now_ts(self) -> str:
        """``now`` in the stored timestamp form."""
        return self._now_ts

    def _sql(self, sql: str) -> str:
        return self.dialect.bind_relations(sql, self._relations)

    def iter_rows(self, sql: str, params: dict[str, Any] | None = None) -> Iterator[Row]:
        """Stream the rows of a query over the as-of relations."""
        bound = {"now": self._now_ts, **(params or {})}
        return self._fetch(self._sql(sql), bound)

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        return list(self.iter_rows(sql, params))

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        for row in self.iter_rows(sql, params):
            return next(iter(row.values()))
        return None

    def epoch(self, column: str) -> str:
        return self.dialect.epoch(column)

    def ts(self, value: datetime) -> str:
        """A datetime in the stored form, for binding as a parameter."""
        return fmt_ts(value)


def json_list(value: Any) -> list[Any]:
    """A JSON-text list column as a list; tolerant of NULL and bad text."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return []
    if not isinstance(parsed, list):
        return []
    # The lists hold names (labels, task ids, paths): a number written for one is
    # read as its text, anything else (an object, a nested list) is skipped.
    return [
        str(x) if isinstance(x, int | float) and not isinstance(x, bool) else x
        for x in parsed
        if isinstance(x, str) or (isinstance(x, int | float) and not isinstance(x, bool))
    ]
