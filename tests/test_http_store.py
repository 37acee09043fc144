"""The HTTP store: mirror the pipeline's backlog, file tasks exactly once by PUT."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reviewer.engine import Engine
from store.base import StoreError
from store.http import HTTPStore, RetryPolicy
from store.timeutil import parse_ts
from tests.support import make_config

# Retries without the production waits, so a failing pipeline fails a test in milliseconds.
FAST = RetryPolicy(wait_initial_s=0.01, wait_max_s=0.05, wait_jitter_s=0.0)


class FakePipeline:
    """A pipeline's HTTP backlog, as httpx's MockTransport sees it."""

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self.metrics: list[dict[str, Any]] = []
        self.puts: list[str] = []
        self.down = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path.removeprefix("/api")
        if request.method == "GET" and path == "/tasks":
            since = request.url.params.get("since")
            items = [
                t
                for t in self.tasks.values()
                if not since or max(t.get("updated_at") or "", t["created_at"]) >= since
            ]
            return httpx.Response(200, json=items)
        if request.method == "GET" and path == "/metrics":
            return httpx.Response(200, json=self.metrics)
        if request.method == "GET" and path == "/test-results":
            return httpx.Response(404)
        if request.method == "PUT" and path.startswith("/tasks/"):
            task_id = path.removeprefix("/tasks/")
            self.puts.append(task_id)
            if task_id in self.tasks:
                return httpx.Response(409, json={"detail": "exists"})
            self.tasks[task_id] = json.loads(request.content)
            return httpx.Response(201, json=self.tasks[task_id])
        return httpx.Response(404)


@pytest.fixture
def pipeline() -> FakePipeline:
    p = FakePipeline()
    p.tasks["t1"] = {
        "id": "t1",
        "title": "Wire metrics",
        "priority": "high",
        "created_at": "2026-03-01T00:00:00Z",
    }
    p.tasks["bad"] = {
        "id": "bad",
        "title": "Broken record",
        "status": "done",
        "created_at": "2026-03-01T00:00:00Z",
    }
    return p


@pytest.fixture
def store(tmp_path: Path, pipeline: FakePipeline) -> Iterator[HTTPStore]:
    s = HTTPStore(
        "https://pipeline.example/api",
        mirror_path=tmp_path / "mirror.db",
        transport=httpx.MockTransport(pipeline.handler),
        policy=FAST,
    )
    yield s
    s.close()


def engine_for(store: HTTPStore) -> Engine:
    cfg = make_config({"rules": {r: {"enabled": False} for r in _other_rules()}})
    return Engine(cfg, store, clock=lambda: parse_ts("2026-03-10T00:00:00Z"))


def _other_rules() -> list[str]:
    from rules import REGISTRY

    return [r for r in REGISTRY if r != "stale-queue"]


def test_review_reads_the_mirror_and_skips_bad_records(
    store: HTTPStore, caplog: pytest.LogCaptureFixture
) -> None:
    result = engine_for(store).review(parse_ts("2026-03-10T00:00:00Z"))
    assert [f["subject"] for f in result.findings] == ["t1"]
    assert any("skipped a record" in r.message for r in caplog.records)
    assert store.get_task("bad") is None


def test_approve_puts_the_task_exactly_once(store: HTTPStore, pipeline: FakePipeline) -> None:
    engine = engine_for(store)
    engine.review(parse_ts("2026-03-10T00:00:00Z"))
    p = engine.approve(1, by="alice")
    engine.approve(1, by="alice")
    assert pipeline.puts == ["reviewer-1"]
    filed = pipeline.tasks["reviewer-1"]
    assert filed["source"] == "reviewer" and filed["proposal_id"] == 1
    assert isinstance(filed["labels"], list) and p.task_id == "reviewer-1"


def test_a_crash_after_the_put_files_it_once_on_retry(
    store: HTTPStore, pipeline: FakePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(store)
    engine.review(parse_ts("2026-03-10T00:00:00Z"))

    def crash(name: str) -> None:
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr("reviewer.engine.failpoint", crash)
    with pytest.raises(KeyboardInterrupt):
        engine.approve(1, by="alice")
    assert store.query("SELECT state FROM reviewer_proposals")[0]["state"] == "pending"
    monkeypatch.undo()
    engine.approve(1, by="alice")
    assert pipeline.puts == ["reviewer-1", "reviewer-1"]
    assert [t for t in pipeline.tasks if t.startswith("reviewer-")] == ["reviewer-1"]


def test_pipeline_down_fails_the_cycle_with_a_clear_message(
    store: HTTPStore, pipeline: FakePipeline
) -> None:
    pipeline.down = True
    with pytest.raises(StoreError, match=r"cannot reach the pipeline at https://pipeline\.example"):
        store.view(parse_ts("2026-03-10T00:00:00Z"))
    result = engine_for(store).review(parse_ts("2026-03-10T00:00:00Z"))
    assert result.status == "failed" and result.errors[0]["stage"] == "read"
    (run,) = store.query("SELECT status, errors FROM reviewer_runs")
    assert run["status"] == "failed" and "cannot reach the pipeline" in run["errors"]
    pipeline.down = False
    assert engine_for(store).review(parse_ts("2026-03-10T00:00:00Z")).status == "ok"


def test_pulls_only_what_changed(store: HTTPStore, pipeline: FakePipeline) -> None:
    assert store.sync()["tasks"] == 1
    assert store.sync()["tasks"] == 0
    pipeline.tasks["t2"] = {"id": "t2", "title": "New", "created_at": "2099-01-01T00:00:00Z"}
    assert store.sync()["tasks"] == 1
