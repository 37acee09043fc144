"""A pipeline that serves its backlog over HTTP, mirrored into a local SQLite file.

The reviewer cannot aggregate inside someone else's web service, so it keeps
a local mirror: before each review it pulls what changed since its last pull
and then queries the mirror like any SQLite store. Its own state (runs,
findings, proposals, silences, audit) lives in the same local file. Filing a
task is a ``PUT`` of the task under its unique id, which the pipeline must
treat as create-if-absent; so a retry after a crash never files it twice.

What the pipeline serves under the base URL (``https://host/api``):

``GET  /tasks?since=ISO&limit=N``
    task records (CONTRACT format) created or updated at or after ``since``
    (all of them without it): a JSON array, or one page of them as
    ``{"items": [...], "next": "CURSOR"}``; the reviewer then asks for
    ``GET /tasks?since=ISO&limit=N&cursor=CURSOR`` until ``next`` is null.
    ``limit`` is a hint; a pipeline that does not page ignores it.
``GET  /metrics?since=ISO&limit=N``
    TaskMetric records created at or after ``since``; paged the same way.
``GET  /test-results?since=ISO&limit=N`` (optional; 404 means "none")
    test result rows: ``run_id``, ``test_id``, ``commit_sha``, ``outcome``,
    ``ran_at`` and optionally ``branch``, ``message``, ``duration_seconds``.
``PUT  /tasks/{id}``
    create the task if no task has that id (200 or 201); an existing one is
    left as it is (200 or 409).
``PATCH /tasks/{id}`` with ``{"labels_add": ["reviewer:stale-queue"]}`` (optional)
    add these labels to the task's labels, keeping the others (200 or 204).
    404 (no such task), 405 or 501 (no partial update) leave the label in the
    mirror only; a pipeline that is failing gets it at the next pull.

Writes carry an ``Idempotency-Key`` header, the same on every retry of one
write. Requests time out, and are tried again on connection errors, timeouts,
429 and 5xx with backoff, honouring ``Retry-After`` (``store._http_client``).
A bearer token for the pipeline may be given in ``REVIEWER_STORE_TOKEN``.
Records the pipeline sends that do not validate are skipped with a warning
naming them; the rest are mirrored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from store._http_client import PipelineClient, RetryPolicy
from store._view import BacklogView
from store.base import Row, StoreError
from store.records import DURATION_MAX_S
from store.sqlite import SQLiteStore

log = logging.getLogger("reviewer.store.http")

TOKEN_ENV = "REVIEWER_STORE_TOKEN"
# Labels a failed PATCH could not deliver yet: {task_id: {"labels": [...], "at": ts}}.
_PENDING_LABELS = "http_pending_labels"


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
        policy: RetryPolicy | None = None,
    ):
        self.base_url = url.rstrip("/")
        super().__init__(mirror_path or default_mirror_path(url), workspace=workspace)
        self.url = self.base_url
        headers = {"Accept": "application/json", "User-Agent": "reviewer"}
        token = os.environ.get(TOKEN_ENV)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = PipelineClient(self.base_url, headers, policy or RetryPolicy(), transport)

    def close(self) -> None:
        self.client.close()
        super().close()

    # -- pulling ----------------------------------------------------------------
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
        from store.records import MetricRecord, TaskRecord
        from store.timeutil import fmt_ts, utcnow

        started = fmt_ts(utcnow())
        self.client.reset_budget()
        self._deliver_pending_labels()
        counts: dict[str, int] = {}
        models: dict[str, Any] = {"tasks": TaskRecord, "metrics": MetricRecord}
        for kind, path in (
            ("tasks", "/tasks"),
            ("metrics", "/metrics"),
            ("test_results", "/test-results"),
        ):
            counts[kind] = 0
            # Page by page: each page is validated and stored in its own transaction, so a
            # large backlog is never held in memory; the mark moves once all pages are in.
            offset = 0
            since = self._mark(f"http_sync_{kind}")
            pages = self.client.pages(
                path, {"since": since} if since else {}, missing_ok=kind == "test_results"
            )
            for items in pages:
                counts[kind] += self._store_page(kind, path, items, offset, models, started)
                offset += len(items)
            with self.transaction():
                self._set_mark(f"http_sync_{kind}", started)
        log.info(
            "pulled the pipeline's changes",
            extra={"url": self.base_url, "retries": self.client.retried, **counts},
        )
        return counts

    def _store_page(
        self,
        kind: str,
        path: str,
        items: list[Any],
        offset: int,
        models: dict[str, Any],
        started: str,
    ) -> int:
        from store.records import describe_errors
        from store.timeutil import norm_ts

        rows: list[Row] = []
        for i, item in enumerate(items, start=offset):
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
                ident = item.get("id") or item.get("task_id") if isinstance(item, dict) else None
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
                return self.upsert_tasks(rows)
            if kind == "metrics":
                return self.upsert_metrics(rows)
            return self.upsert_test_results(rows)

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
        path = f"/tasks/{quote(str(record['id']), safe='')}"
        # The task id is unique per proposal, so it keys this write across retries and restarts.
        resp = self.client.request(
            "PUT", path, json=body, idempotency_key=f"reviewer-put-{record['id']}"
        )
        if resp.status_code not in (200, 201, 409):
            raise StoreError(
                f"PUT {self.base_url}{path} answered {resp.status_code}: {resp.text[:200]}"
            )
        return super().insert_task_once(record)

    def touch_task_labels(self, task_id: str, add_labels: Sequence[str], at: str) -> None:
        """Label the task in the mirror and in the pipeline (``PATCH`` with ``labels_add``).

        A pipeline that is failing gets the labels at the next pull instead: they
        wait in ``reviewer_meta``; the approval that added them goes on.
        """
        super().touch_task_labels(task_id, add_labels, at)
        try:
            # One try: this runs inside the approval's transaction, and the next pull retries.
            self._patch_labels(task_id, list(add_labels), at, tries=1)
        except StoreError as exc:
            log.warning(
                "could not label the task in the pipeline; trying again at the next pull",
                extra={"task": task_id, "labels": list(add_labels), "error": str(exc)},
            )
            with self.transaction():
                pending = self._pending_labels()
                entry = pending.setdefault(task_id, {"labels": [], "at": at})
                entry["labels"] += [x for x in add_labels if x not in entry["labels"]]
                self._set_mark(_PENDING_LABELS, json.dumps(pending))

    def _patch_labels(self, task_id: str, labels: list[str], at: str, *, tries: int = 0) -> None:
        path = f"/tasks/{quote(task_id, safe='')}"
        digest = hashlib.sha256("\x1f".join([task_id, at, *sorted(labels)]).encode())
        resp = self.client.request(
            "PATCH",
            path,
            json={"labels_add": labels},
            idempotency_key=f"reviewer-labels-{digest.hexdigest()[:24]}",
            tries=tries,
        )
        if resp.status_code in (200, 201, 204):
            return
        # Nothing to retry: the task is gone, or the pipeline has no partial update.
        log.warning(
            "the pipeline did not take the labels; they stay in the mirror only",
            extra={
                "request": f"PATCH {self.base_url}{path}",
                "status": resp.status_code,
                "answer": resp.text[:200],
                "labels": labels,
            },
        )

    def set_task_priority(self, task_id: str, priority: str, at: str) -> str | None:
        """The HTTP protocol's partial update carries labels only: None, so an approved
        priority change is filed as a task for the pipeline instead."""
        return None

    def _pending_labels(self) -> dict[str, dict[str, Any]]:
        raw = self._mark(_PENDING_LABELS)
        return json.loads(raw) if raw else {}

    def _deliver_pending_labels(self) -> None:
        pending = self._pending_labels()
        if not pending:
            return
        for task_id, entry in list(pending.items()):
            # A failure here fails the pull too (same pipeline): it ends the cycle with its message.
            self._patch_labels(task_id, entry["labels"], entry["at"])
            del pending[task_id]
            with self.transaction():
                self._set_mark(_PENDING_LABELS, json.dumps(pending))


__all__ = ["HTTPStore", "RetryPolicy", "default_mirror_path"]


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
