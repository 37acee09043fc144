"""What the SQL stores share: record upserts, reading a task, labelling one.

Written once against the store's own ``query``/``execute`` (``:name``
parameters) and ``_upsert``; each adapter supplies those for its database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Self

from store._dialect import Dialect
from store._schema import COVERAGE_COLUMNS, METRIC_COLUMNS, TASK_COLUMNS, TEST_RESULT_COLUMNS
from store.base import Row


class SQLStoreCommon:
    """Mixin of the SQL stores; the adapter provides the abstract methods."""

    dialect: Dialect

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        raise NotImplementedError

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        raise NotImplementedError

    def _upsert(
        self, table: str, columns: Sequence[str], pk: tuple[str, ...], records: Iterable[Row]
    ) -> int:
        raise NotImplementedError

    def upsert_tasks(self, records: Iterable[Row]) -> int:
        return self._upsert("tasks", TASK_COLUMNS, ("id",), records)

    def upsert_metrics(self, records: Iterable[Row]) -> int:
        return self._upsert("task_metrics", METRIC_COLUMNS, ("task_id", "created_at"), records)

    def upsert_test_results(self, records: Iterable[Row]) -> int:
        return self._upsert("test_results", TEST_RESULT_COLUMNS, ("run_id", "test_id"), records)

    def upsert_coverage(self, records: Iterable[Row]) -> int:
        return self._upsert("coverage", COVERAGE_COLUMNS, ("commit_sha", "file"), records)

    def get_task(self, task_id: str) -> Row | None:
        rows = self.query("SELECT * FROM tasks WHERE id = :id", {"id": task_id})
        return rows[0] if rows else None

    def touch_task_labels(self, task_id: str, add_labels: Sequence[str], at: str) -> None:
        """Add labels to a backlog task, remembering that this update was ours."""
        lock = " FOR UPDATE" if self.dialect.name == "postgresql" else ""
        with self.transaction():
            rows = self.query(
                f"SELECT labels, updated_at FROM tasks WHERE id = :id{lock}", {"id": task_id}
            )
            if not rows:
                return
            row = rows[0]
            try:
                labels = json.loads(row["labels"]) if row["labels"] else []
            except ValueError:
                labels = []
            new = [x for x in add_labels if x not in labels]
            if not new:
                return
            self.execute(
                "UPDATE tasks SET labels = :labels, updated_at = :at WHERE id = :id",
                {"labels": json.dumps(labels + new), "at": at, "id": task_id},
            )
            self._remember_touch(task_id, at, row["updated_at"])

    def set_task_priority(self, task_id: str, priority: str, at: str) -> str | None:
        """Change a backlog task's priority, remembering that this update was ours; the
        priority it had (None when there is no such task)."""
        lock = " FOR UPDATE" if self.dialect.name == "postgresql" else ""
        with self.transaction():
            rows = self.query(
                f"SELECT priority, updated_at FROM tasks WHERE id = :id{lock}", {"id": task_id}
            )
            if not rows:
                return None
            previous = str(rows[0]["priority"] or "normal")
            if previous != priority:
                self.execute(
                    "UPDATE tasks SET priority = :p, updated_at = :at WHERE id = :id",
                    {"p": priority, "at": at, "id": task_id},
                )
                self._remember_touch(task_id, at, rows[0]["updated_at"])
            return previous

    def _remember_touch(self, task_id: str, at: str, previous_updated_at: str | None) -> None:
        """Record that the reviewer updated a task at ``at``, so its activity stays the
        pipeline's own."""
        # A second touch at the same instant keeps the pipeline's own last update.
        self.execute(
            "INSERT INTO reviewer_task_touches (task_id, touched_at, previous_updated_at)"
            " VALUES (:id, :at, :prev) ON CONFLICT (task_id) DO UPDATE SET"
            " touched_at = excluded.touched_at,"
            " previous_updated_at = CASE WHEN reviewer_task_touches.touched_at = :prev"
            "   THEN reviewer_task_touches.previous_updated_at"
            "   ELSE excluded.previous_updated_at END",
            {"id": task_id, "at": at, "prev": previous_updated_at},
        )
