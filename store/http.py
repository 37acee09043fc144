"""A pipeline that serves its backlog over HTTP, mirrored into a local SQLite file.

The reviewer cannot aggregate inside someone else's web service, so it keeps
a local mirror: before each review it pulls what changed since its last pull
and then queries the mirror like any SQLite store. Its own state (runs,
findings, proposals, silences, audit) lives in the same local file. Filing a
task is a ``PUT`` of the task under its unique id, which the pipeline must
treat as create-if-absent; so a retry after a crash never files it twice.

What the pipeline serves under the base URL (``https://host/api``):

``GET  /tasks?since=ISO``
    task records (CONTRACT format) created or updated at or after ``since``
    (all of them without it), as a JSON array.
``GET  /metrics?since=ISO``
    TaskMetric records created at or after ``since``.
``GET  /test-results?since=ISO`` (optional; 404 means "none")
    test result rows: ``run_id``, ``test_id``, ``commit_sha``, ``outcome``,
    ``ran_at`` and optionally ``branch``, ``message``, ``duration_seconds``.
``PUT  /tasks/{id}``
    create the task if no task has that id (200 or 201); an existing one is
    left as it is (200 or 409).

A bearer token for the pipeline may be given in ``REVIEWER_STORE_TOKEN``.
Records the pipeline sends that do not validate are skipped with a warning
naming them; the rest are mirrored.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from store._view import BacklogView
from store.base import Row, StoreError
from store.records import DURATION_MAX_S
from store.sqlite import SQLiteStore

log = logging.getLogger("reviewer.store.http")

TOKEN_ENV = "REVIEWER_STORE_TOKEN"
TIMEOUT_S = 30.0


def default_mirror_path(url: str) -> Path:
    """Where the mirror of a URL lives unless told: a file named after the host."""
    host = httpx.URL(url).host or "pipeline"
    return Path(f"reviewer-{host}.db")


class HTTPStore(SQLiteStore):
    """An HTTP backlog, mirrored locally; reads come from the mirror."""

    def __init__(
        self,
        url: str,
        *,
        workspace: Any = None,
        mirror_path: str | Path | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = url.rstrip("/")
        super().__init__(mirror_path or default_mirror_path(url), workspace=workspace)
        self.url = self.base_url
        headers = {"Accept": "application/json", "User-Agent": "reviewer"}
        token = os.environ.get(TOKEN_ENV)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=TIMEOUT_S, transport=transport
        )

    def close(self) -> None:
        self.client.close()
        super().close()

    # -- pulling ----------------------------------------------------------------
    def _get(self, path: str, since: str | None, *, optional: bool = False) -> list[Any]:
        params = {"since": since} if since else {}
        try:
            resp = self.client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise StoreError(f"cannot reach the pipeline at {self.base_url}{path}: {exc}") from exc
        if optional and resp.status_code == 404:
            return []
        if resp.status_code != 200:
            raise StoreError(
                f"GET {self.base_url}{path} answered {resp.status_code}: {resp.text[:200]}"
            )
        try:
            data = resp.json()
        except ValueError:
            raise StoreError(f"GET {self.base_url}{path} did not return JSON") from None
        if not isinstance(data, list):
            raise StoreError(
                f"GET {self.base_url}{path} returned {type(data).__name__}, not a list"
            )
        return data

    def _mark(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM reviewer_meta WHERE key = :k", {"k": key})
        return rows[0]["value"] if rows else None

    def _set_mark(self, key: str, value: str) -> None:
        self.execute(
            "INSERT INTO reviewer_meta (key, value) VALUES (:k, :v)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            {"k": key, "v": value},
        )

    def sync(self) -> dict[str, int]:
        """Pull what changed since the last pull into the mirror; returns counts."""
        from store.records import MetricRecord, TaskRecord, describe_errors
        from store.timeutil import fmt_ts, norm_ts, utcnow

        started = fmt_ts(utcnow())
        counts: dict[str, int] = {}
        models: dict[str, Any] = {"tasks": TaskRecord, "metrics": MetricRecord}
        for kind, path in (
            ("tasks", "/tasks"),
            ("metrics", "/metrics"),
            ("test_results", "/test-results"),
        ):
            items = self._get(
                path, self._mark(f"http_sync_{kind}"), optional=kind == "test_results"
            )
            rows: list[Row] = []
            for i, item in enumerate(items):
                try:
                    if kind == "test_results":
                        rows.append(_test_row(item, norm_ts))
                    else:
                        row = models[kind].model_validate(item).row()
                        if kind == "tasks" and not row["created_at"]:
                            row["created_at"] = started
                        rows.append(row)
                except (ValidationError, KeyError, TypeError, ValueError) as exc:
                    why = (
                        "; ".join(describe_errors(exc))
                        if isinstance(exc, ValidationError)
                        else f"{type(exc).__name__}: {exc}"
                    )
                    ident = (
                        item.get("id") or item.get("task_id") if isinstance(item, dict) else None
                    )
                    log.warning(
                        "skipped a record the pipeline sent",
                        extra={
                            "source": f"{self.base_url}{path}",
                            "index": i,
                            "record": ident,
                            "why": why,
                        },
                    )
            with self.transaction():
                if kind == "tasks":
                    counts[kind] = self.upsert_tasks(rows)
                elif kind == "metrics":
                    counts[kind] = self.upsert_metrics(rows)
                else:
                    counts[kind] = self.upsert_test_results(rows)
                self._set_mark(f"http_sync_{kind}", started)
        log.info("pulled the pipeline's changes", extra={"url": self.base_url, **counts})
        return counts

    def view(self, now: datetime) -> BacklogView:
        self.sync()
        return super().view(now)

    @contextmanager
    def dry_run_copy(self) -> Iterator[SQLiteStore]:
        """Pull first (the mirror is the reviewer's own), then a copy of the mirror:
        a dry run files nothing at the pipeline."""
        self.sync()
        with super().dry_run_copy() as copy:
            yield copy

    # -- filing -------------------------------------------------------------------
    def insert_task_once(self, record: Row) -> bool:
        body = {k: v for k, v in record.items() if v is not None}
        for key in ("depends_on", "labels", "files_changed", "extra"):
            if isinstance(body.get(key), str):
                body[key] = json.loads(body[key])
        extra = body.pop("extra", None) or {}
        body.update({k: v for k, v in extra.items() if k not in body})
        try:
            resp = self.client.put(f"/tasks/{record['id']}", json=body)
        except httpx.HTTPError as exc:
            raise StoreError(f"cannot file task {record['id']} at {self.base_url}: {exc}") from exc
        if resp.status_code not in (200, 201, 409):
            raise StoreError(
                f"PUT {self.base_url}/tasks/{record['id']} answered {resp.status_code}: "
                f"{resp.text[:200]}"
            )
        return super().insert_task_once(record)

    def touch_task_labels(self, task_id: str, add_labels: Sequence[str], at: str) -> None:
        """Labels stay local: the HTTP protocol has no partial update of a task."""
        return None


def _seconds(value: Any) -> float | None:
    """A test's duration if it is a finite number of seconds within the cap, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) and 0 <= seconds <= DURATION_MAX_S else None


def _test_row(item: dict[str, Any], norm_ts: Any) -> Row:
    test_id = item["test_id"]
    classname, _, name = test_id.partition("::")
    return {
        "run_id": str(item["run_id"]),
        "test_id": test_id,
        "classname": item.get("classname", classname),
        "name": item.get("name", name),
        "commit_sha": str(item["commit_sha"]),
        "branch": item.get("branch"),
        "outcome": item["outcome"],
        "duration_seconds": _seconds(item.get("duration_seconds")),
        "message": item.get("message"),
        "file": item.get("file"),
        "ran_at": norm_ts(item["ran_at"]),
    }
