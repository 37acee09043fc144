"""Pipeline metrics: exact percentiles, success rates, usage, filters, and the HTTP API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from reviewer.api.agent_metrics import router
from reviewer.metrics import pipeline_metrics
from store import MetricFilter
from store.sqlite import SQLiteStore
from store.timeutil import parse_ts
from tests.conftest import RouterClient
from tests.support import make_config, make_store

NOW = "2026-03-10T00:00:00Z"
DURATIONS = [12.0, 45.5, 30.0, 7.25, 120.0, 61.0, 33.0, 90.0, 18.0, 240.0, 55.0]


def _metrics() -> list[dict[str, Any]]:
    out = []
    for i, d in enumerate(DURATIONS):
        out.append(
            {
                "task_id": f"t{i % 8}",
                "task_type": "impl" if i % 3 else "spec",
                "model": "claude" if i % 2 else "cursor/auto",
                "executor": "r1" if i < 6 else "r2",
                "duration_seconds": d,
                "status": "failed" if i in (2, 5, 9) else "completed",
                "created_at": f"2026-03-0{1 + i % 9}T{10 + i:02d}:00:00Z",
                "tokens_in": 100 * (i + 1),
                "tokens_out": 10 * (i + 1),
                "cost_usd": 0.5,
                "api_calls": 2,
            }
        )
    return out


@pytest.fixture
def store() -> Iterator[SQLiteStore]:
    s = make_store(metrics=_metrics())
    yield s
    s.close()


def test_percentiles_match_numpy_linear(store: SQLiteStore) -> None:
    doc = pipeline_metrics(store.view(parse_ts(NOW)))
    et = doc["execution_time"]
    assert et["p50_seconds"] == pytest.approx(np.percentile(DURATIONS, 50), abs=1e-3)
    assert et["p95_seconds"] == pytest.approx(np.percentile(DURATIONS, 95), abs=1e-3)
    assert et["count"] == len(DURATIONS)


@pytest.mark.parametrize("n", [1, 2, 3, 20, 21, 101])
def test_percentile_definition_on_many_sizes(n: int) -> None:
    values = [float((i * 37) % 101) + 0.5 for i in range(n)]
    rows = [
        {
            "task_id": f"x{i}",
            "duration_seconds": v,
            "status": "completed",
            "created_at": "2026-03-01T00:00:00Z",
        }
        for i, v in enumerate(values)
    ]
    s = make_store(metrics=rows)
    try:
        et = pipeline_metrics(s.view(parse_ts(NOW)))["execution_time"]
    finally:
        s.close()
    assert et["p50_seconds"] == pytest.approx(np.percentile(values, 50), abs=1e-3)
    assert et["p95_seconds"] == pytest.approx(np.percentile(values, 95), abs=1e-3)


def test_success_rates_overall_and_by_dimension(store: SQLiteStore) -> None:
    doc = pipeline_metrics(store.view(parse_ts(NOW)))
    assert doc["success_rate"] == {
        **doc["success_rate"],
        "completed": 8,
        "failed": 3,
        "total": 11,
    }
    # spec runs: i = 0, 3, 6, 9 (9 failed) → 3/4; impl: 7 runs, 2 failed (2, 5) → 5/7
    assert doc["by_task_type"]["spec"]["success_rate"] == 0.75
    assert doc["by_task_type"]["impl"]["success_rate"] == round(5 / 7, 4)
    claude = [d for i, d in enumerate(DURATIONS) if i % 2]
    assert doc["by_model"]["claude"]["count"] == len(claude)
    assert doc["by_model"]["claude"]["avg_duration"] == pytest.approx(np.mean(claude), abs=1e-3)
    # r1: i < 6 → failures 2, 5 → 4/6
    assert doc["success_rate"]["by_executor"]["r1"]["success_rate"] == round(4 / 6, 4)


def test_usage_totals_and_per_task(store: SQLiteStore) -> None:
    usage = pipeline_metrics(store.view(parse_ts(NOW)))["usage"]
    tokens_in = sum(100 * (i + 1) for i in range(11))
    assert usage["tokens_in"] == tokens_in
    assert usage["tokens_out"] == tokens_in // 10
    assert usage["cost_usd"] == pytest.approx(5.5)
    assert usage["api_calls"] == 22
    assert usage["runs"] == 11
    assert usage["tasks"] == 8
    assert usage["per_task"]["tokens_in"] == pytest.approx(tokens_in / 8)
    assert usage["per_run"]["api_calls"] == pytest.approx(2.0)


def test_filters_and_as_of(store: SQLiteStore) -> None:
    view = store.view(parse_ts(NOW))
    by_model = pipeline_metrics(view, MetricFilter(model="claude"))
    assert by_model["success_rate"]["total"] == 5
    assert list(by_model["by_model"]) == ["claude"]
    window = pipeline_metrics(
        view, MetricFilter(since="2026-03-02T00:00:00Z", until="2026-03-04T00:00:00Z")
    )
    # created on 03-02 (i = 1, 10) and 03-03 (i = 2); until is exclusive
    assert window["success_rate"]["total"] == 3
    assert window["execution_time"]["p50_seconds"] == pytest.approx(
        np.percentile([DURATIONS[1], DURATIONS[10], DURATIONS[2]], 50)
    )
    early = pipeline_metrics(store.view(parse_ts("2026-03-01T23:00:00Z")))
    assert early["success_rate"]["total"] == 2  # only i = 0 and 9 existed then
    nothing = pipeline_metrics(view, MetricFilter(task_type="nope"))
    assert nothing["execution_time"]["p50_seconds"] is None
    assert nothing["success_rate"]["total"] == 0
    assert nothing["usage"]["per_task"]["tokens_in"] is None


# -- HTTP ---------------------------------------------------------------------------------
@pytest.fixture
def client(store: SQLiteStore, router_client: RouterClient) -> Iterator[TestClient]:
    cfg = make_config({"reviewer": {"api_token": "s3cret"}})
    with router_client(cfg, store, parse_ts(NOW), router) as c:
        yield c


AUTH = {"Authorization": "Bearer s3cret"}


def test_get_metrics_has_exactly_the_seed_shape(client: TestClient) -> None:
    doc = client.get("/api/agent/metrics").json()
    assert set(doc) == {"execution_time", "success_rate", "by_task_type", "by_model", "usage"}
    assert {"p50_seconds", "p95_seconds"} <= set(doc["execution_time"])
    assert {"completed", "failed", "total"} <= set(doc["success_rate"])
    assert all("success_rate" in v for v in doc["by_task_type"].values())
    assert all({"count", "avg_duration"} <= set(v) for v in doc["by_model"].values())
    filtered = client.get("/api/agent/metrics", params={"model": "claude", "executor": "r2"})
    assert filtered.json()["success_rate"]["total"] == 2  # i = 7, 9
    bad = client.get("/api/agent/metrics", params={"since": "yesterday"})
    assert bad.status_code == 422 and "since" in bad.text


def test_post_metrics_needs_the_token(client: TestClient) -> None:
    one = {
        "task_id": "n1",
        "duration_seconds": 3,
        "status": "completed",
        "created_at": "2026-03-09T00:00:00Z",
    }
    assert client.post("/api/agent/metrics", json=one).status_code == 401
    r = client.post("/api/agent/metrics", json=one, headers=AUTH)
    assert r.status_code == 201 and r.json() == {"stored": 1}
    assert client.get("/api/agent/metrics").json()["success_rate"]["total"] == 12


def test_post_metric_list_is_all_or_nothing(client: TestClient, store: SQLiteStore) -> None:
    good = {
        "task_id": "n2",
        "duration_seconds": 3,
        "status": "completed",
        "created_at": "2026-03-09T00:00:00Z",
    }
    bad = {**good, "task_id": "n3", "status": "done"}
    r = client.post("/api/agent/metrics", json=[good, bad], headers=AUTH)
    assert r.status_code == 422
    assert any("status" in msg and msg.startswith("[1]") for msg in r.json()["detail"])
    assert store.query("SELECT COUNT(*) AS n FROM task_metrics")[0]["n"] == 11
    missing = {k: v for k, v in good.items() if k != "duration_seconds"}
    r = client.post("/api/agent/metrics", json=missing, headers=AUTH)
    assert r.status_code == 422 and "duration_seconds" in r.text
    r = client.post("/api/agent/metrics", json=[good, {**good, "task_id": "n4"}], headers=AUTH)
    assert r.status_code == 201 and r.json() == {"stored": 2}
    assert store.query("SELECT COUNT(*) AS n FROM task_metrics")[0]["n"] == 13
