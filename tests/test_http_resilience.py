"""The HTTP store against a real local pipeline that is slow, busy, pages and goes down.

The pipeline here is an ``http.server.ThreadingHTTPServer`` on 127.0.0.1 in a
thread, so timeouts, refused connections and dropped responses are real
sockets, not mocks. Faults are queued and hit the next requests in order.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from reviewer.app import App
from reviewer.daemon import Daemon
from reviewer.engine import Engine
from store.base import StoreError
from store.http import HTTPStore, RetryPolicy
from store.timeutil import parse_ts
from tests.support import make_config

NOW = "2026-03-10T00:00:00Z"
# Short backoff so failing tests fail fast; Retry-After still sets its own wait.
FAST = RetryPolicy(timeout_s=2.0, wait_initial_s=0.01, wait_max_s=0.05, wait_jitter_s=0.0)


@dataclass
class Seen:
    at: float
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Pipeline:
    """A pipeline's HTTP API over a dict of tasks, with scripted faults."""

    paged: bool = True
    patchable: bool = True
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: deque[tuple[Any, ...]] = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> None:
        pipeline = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                pipeline.handle(self)

            do_PUT = do_PATCH = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def requests(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path == path]

    # -- serving ----------------------------------------------------------------
    def handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length)) if length else None
        path = parts.path.removeprefix("/api")
        with self.lock:
            self.seen.append(Seen(time.monotonic(), h.command, path, query, dict(h.headers), body))
            fault = self.faults.popleft() if self.faults else None
        if fault is not None:
            kind = fault[0]
            if kind == "status":
                headers = {"Retry-After": fault[2]} if len(fault) > 2 else {}
                return self._send(h, fault[1], {"detail": "busy"}, headers)
            if kind == "slow":
                time.sleep(fault[1])
            if kind == "down":
                # The pipeline dies: this request gets no answer and the port closes.
                threading.Thread(target=self.stop).start()
                h.close_connection = True
                return None
        status, answer = self.answer(h.command, path, query, body)
        with contextlib.suppress(OSError):  # the client gave up waiting (a timeout under test)
            self._send(h, status, answer, {})
        return None

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/tasks":
            since = query.get("since", "")
            with self.lock:
                changed = [
                    t for t in self.tasks.values() if t.get("updated_at", t["created_at"]) >= since
                ]
            items = sorted(changed, key=lambda t: t["id"])
            return 200, self._page(items, query)
        if method == "GET" and path == "/metrics":
            return 200, self._page([], query)
        if method == "GET" and path == "/test-results":
            return 404, {"detail": "not here"}
        task_id = path.removeprefix("/tasks/")
        if method == "PUT":
            with self.lock:
                if task_id in self.tasks:
                    return 409, {"detail": "exists"}
                self.tasks[task_id] = body
            return 201, body
        if method == "PATCH":
            if not self.patchable:
                return 405, {"detail": "no partial update"}
            with self.lock:
                task = self.tasks.get(task_id)
                if task is None:
                    return 404, {"detail": "no such task"}
                labels = task.setdefault("labels", [])
                labels += [x for x in body["labels_add"] if x not in labels]
                task["updated_at"] = "2026-03-10T00:00:01Z"
            return 200, task
        return 404, {"detail": "no route"}

    def _page(self, items: list[Any], query: dict[str, str]) -> Any:
        if not self.paged:
            return items
        start = int(query.get("cursor", "o0")[1:])
        end = start + int(query["limit"])
        return {"items": items[start:end], "next": f"o{end}" if end < len(items) else None}

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, obj: Any, headers: dict[str, str]) -> None:
        data = json.dumps(obj).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)


def task(i: int | str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"t{i}",
        "title": f"Task {i}",
        "priority": "normal",
        "created_at": "2026-03-01T00:00:00Z",
        **extra,
    }


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    p = Pipeline()
    p.tasks["t1"] = task(1, title="Wire metrics", priority="high")
    p.start()
    yield p
    p.stop()


def open_store(p: Pipeline, tmp_path: Path, policy: RetryPolicy = FAST) -> HTTPStore:
    return HTTPStore(p.url, mirror_path=tmp_path / "mirror.db", policy=policy)


def mirrored(store: HTTPStore) -> int:
    return int(store.query("SELECT COUNT(*) AS n FROM tasks")[0]["n"])


def stale_queue_only() -> dict[str, Any]:
    from rules import REGISTRY

    return {"rules": {r: {"enabled": False} for r in REGISTRY if r != "stale-queue"}}


def engine_for(store: HTTPStore) -> Engine:
    return Engine(make_config(stale_queue_only()), store, clock=lambda: parse_ts(NOW))


# -- timeouts, 503, 429, Retry-After, the budget ------------------------------------
def test_a_slow_answer_times_out_and_the_retry_gets_it(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.faults.append(("slow", 1.5))
    store = open_store(pipeline, tmp_path, RetryPolicy(**{**FAST.__dict__, "timeout_s": 0.3}))
    try:
        started = time.monotonic()
        assert store.sync()["tasks"] == 1
        assert time.monotonic() - started < 1.4  # it did not wait for the slow answer
        assert len(pipeline.requests("GET", "/tasks")) == 2
        assert store.client.retried == 1
    finally:
        store.close()


def test_slow_within_the_timeout_is_one_request(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.faults.append(("slow", 0.2))
    store = open_store(pipeline, tmp_path)
    try:
        assert store.sync()["tasks"] == 1
        assert len(pipeline.requests("GET", "/tasks")) == 1 and store.client.retried == 0
    finally:
        store.close()


def test_503_and_429_wait_for_retry_after(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.faults.extend([("status", 503, "1"), ("status", 429, "1")])
    store = open_store(pipeline, tmp_path)
    try:
        assert store.sync()["tasks"] == 1
    finally:
        store.close()
    tries = pipeline.requests("GET", "/tasks")
    assert len(tries) == 3
    # The backoff alone would be 10-50 ms: the pauses are the pipeline's Retry-After.
    gaps = [b.at - a.at for a, b in itertools.pairwise(tries)]
    assert all(0.9 <= g < 3.0 for g in gaps), gaps


def test_a_retry_after_beyond_the_limit_fails_at_once(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.faults.append(("status", 503, "3600"))
    store = open_store(pipeline, tmp_path)
    try:
        with pytest.raises(StoreError) as err:
            store.sync()
    finally:
        store.close()
    message = str(err.value)
    assert "/api/tasks answered 503" in message
    assert "retry after 3600 s" in message and "http_max_retry_after" in message
    assert len(pipeline.requests("GET", "/tasks")) == 1


def test_the_retry_budget_bounds_a_cycle(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.faults.extend([("status", 502)] * 10)
    store = open_store(pipeline, tmp_path, RetryPolicy(**{**FAST.__dict__, "budget": 3}))
    try:
        with pytest.raises(StoreError, match=r"retry budget of this cycle is spent"):
            store.sync()
        assert len(pipeline.requests("GET", "/tasks")) == 4  # one try and three retries
        # The next cycle has a budget again: three more retries, then the pipeline recovers.
        pipeline.faults = deque([("status", 502)] * 3)
        assert store.sync()["tasks"] == 1
        assert store.client.retried == 3
    finally:
        store.close()


def test_one_request_gives_up_after_its_attempts(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.faults.extend([("status", 500)] * 10)
    store = open_store(pipeline, tmp_path, RetryPolicy(**{**FAST.__dict__, "attempts": 3}))
    try:
        with pytest.raises(StoreError, match=r"answered 500 .*gave up after 3 tries"):
            store.sync()
    finally:
        store.close()


# -- paging -------------------------------------------------------------------------
def test_pages_through_a_large_backlog(pipeline: Pipeline, tmp_path: Path) -> None:
    for i in range(2, 2501):
        pipeline.tasks[f"t{i}"] = task(i)
    store = open_store(pipeline, tmp_path, RetryPolicy(**{**FAST.__dict__, "page_size": 1000}))
    try:
        assert store.sync()["tasks"] == 2500
        assert mirrored(store) == 2500
    finally:
        store.close()
    pages = pipeline.requests("GET", "/tasks")
    assert [p.query.get("cursor") for p in pages] == [None, "o1000", "o2000"]
    assert all(p.query["limit"] == "1000" for p in pages)


def test_a_pipeline_that_does_not_page_sends_one_array(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.paged = False
    for i in range(2, 1501):
        pipeline.tasks[f"t{i}"] = task(i)
    store = open_store(pipeline, tmp_path, RetryPolicy(**{**FAST.__dict__, "page_size": 100}))
    try:
        assert store.sync()["tasks"] == 1500
    finally:
        store.close()
    assert len(pipeline.requests("GET", "/tasks")) == 1


# -- down mid-cycle -----------------------------------------------------------------
def test_down_mid_cycle_fails_the_cycle_and_the_next_one_catches_up(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    for i in range(2, 301):
        pipeline.tasks[f"t{i}"] = task(i)
    # The first page is served, then the pipeline dies on the second.
    pipeline.faults.extend([None, ("down",)])
    store = open_store(pipeline, tmp_path, RetryPolicy(**{**FAST.__dict__, "page_size": 100}))
    app = App(make_config(stale_queue_only()), store, clock=lambda: parse_ts(NOW))
    daemon = Daemon(app)
    try:
        daemon.cycle()  # never raises: the daemon stays up
        (run,) = store.query("SELECT status, errors FROM reviewer_runs")
        assert run["status"] == "failed"
        assert f"cannot reach the pipeline at {pipeline.url}/tasks" in run["errors"]
        assert mirrored(store) == 100  # the page that came is kept; the mark did not move
        assert store._mark("http_sync_tasks") is None

        pipeline.start()  # back on the same port
        daemon.cycle()
        runs = store.query("SELECT status FROM reviewer_runs ORDER BY id")
        assert [r["status"] for r in runs] == ["failed", "ok"]
        assert mirrored(store) == 300
        assert daemon.cycles == 2
    finally:
        app.close()


# -- writes: idempotency keys and labels ------------------------------------------
def test_a_put_is_retried_under_one_idempotency_key(pipeline: Pipeline, tmp_path: Path) -> None:
    store = open_store(pipeline, tmp_path)
    try:
        engine = engine_for(store)
        engine.review(parse_ts(NOW))
        pipeline.faults.append(("status", 503, "0"))
        p = engine.approve(1, by="alice")
        engine.approve(1, by="alice")
    finally:
        store.close()
    puts = pipeline.requests("PUT", f"/tasks/{p.task_id}")
    assert len(puts) == 2  # the 503, then the retry; the second approve sends nothing
    keys = {s.headers.get("Idempotency-Key") for s in puts}
    assert keys == {f"reviewer-put-{p.task_id}"}
    assert [t for t in pipeline.tasks if t.startswith("reviewer-")] == [p.task_id]


def test_labels_reach_the_pipeline_by_patch(pipeline: Pipeline, tmp_path: Path) -> None:
    store = open_store(pipeline, tmp_path)
    try:
        engine = engine_for(store)
        engine.review(parse_ts(NOW))
        engine.approve(1, by="alice")
        (patch,) = pipeline.requests("PATCH", "/tasks/t1")
        assert patch.body == {"labels_add": ["reviewer:stale-queue"]}
        assert patch.headers["Idempotency-Key"].startswith("reviewer-labels-")
        assert pipeline.tasks["t1"]["labels"] == ["reviewer:stale-queue"]
        assert "reviewer:stale-queue" in store.get_task("t1")["labels"]
    finally:
        store.close()


def test_a_failed_label_waits_for_the_next_pull(
    pipeline: Pipeline, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(pipeline, tmp_path)
    try:
        engine = engine_for(store)
        engine.review(parse_ts(NOW))
        pipeline.faults.append(None)  # the PUT goes through
        pipeline.faults.append(("status", 503))  # the PATCH does not
        p = engine.approve(1, by="alice")
        assert p.state.value == "scheduled"  # the approval is not held up by a label
        assert "labels" not in pipeline.tasks["t1"]
        assert any("trying again at the next pull" in r.message for r in caplog.records)
        store.sync()
        assert pipeline.tasks["t1"]["labels"] == ["reviewer:stale-queue"]
        assert store._pending_labels() == {}
        assert len(pipeline.requests("PATCH", "/tasks/t1")) == 2
    finally:
        store.close()


def test_a_pipeline_without_patch_keeps_labels_local(
    pipeline: Pipeline, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline.patchable = False
    store = open_store(pipeline, tmp_path)
    try:
        engine = engine_for(store)
        engine.review(parse_ts(NOW))
        with caplog.at_level(logging.WARNING, logger="reviewer.store.http"):
            assert engine.approve(1, by="alice").state.value == "scheduled"
        assert any("stay in the mirror only" in r.message for r in caplog.records)
        assert "reviewer:stale-queue" in store.get_task("t1")["labels"]
        assert store._pending_labels() == {}
    finally:
        store.close()
