"""Goal progress: the formula, empty goals, the predicted date, selectors, the API."""

from __future__ import annotations

from typing import Any

import pytest

from reviewer.api.goals import router
from store.goals import GoalDef, goal_status
from store.timeutil import parse_ts
from tests.conftest import RouterClient
from tests.support import make_config, make_store

NOW = parse_ts("2026-03-15T00:00:00Z")


def _task(tid: str, status: str, **kw: Any) -> dict[str, Any]:
    t = {
        "id": tid,
        "title": f"task {tid}",
        "status": status,
        "goal_id": "g",
        "created_at": "2026-02-01T00:00:00Z",
    }
    if status in ("running", "completed", "failed"):
        t["started_at"] = "2026-02-02T00:00:00Z"
    if status in ("completed", "failed", "cancelled"):
        t["finished_at"] = "2026-03-10T00:00:00Z"
    t.update(kw)
    return t


def _status(tasks: list[dict[str, Any]], goal: GoalDef, gid: str = "g") -> dict[str, Any]:
    store = make_store(tasks=tasks)
    try:
        return goal_status(store.view(NOW), gid, goal)
    finally:
        store.close()


def test_progress_formula_counts_running_partially_and_drops_cancelled() -> None:
    tasks = [
        _task("c1", "completed"),
        _task("c2", "completed", finished_at="2026-02-20T00:00:00Z"),  # outside the 14 days
        _task("r1", "running"),
        _task("r2", "running"),
        _task("p1", "pending"),
        _task("f1", "failed"),
        _task("x1", "cancelled"),
    ]
    st = _status(tasks, GoalDef(title="G"))
    # denominator 6 (cancelled excluded); units 2 + 0.25·2 = 2.5
    assert st["progress"] == pytest.approx(round(2.5 / 6, 4))
    assert st["progress_percent"] == round(2.5 / 6 * 100, 1)
    assert (st["linked"], st["cancelled"], st["remaining"]) == (7, 1, 4)
    # one completion in the last 14 days → 1/14 per day → 4 remaining in 56 days
    assert st["rate_per_day"] == pytest.approx(round(1 / 14, 4))
    assert st["predicted_completion"] == "2026-05-10T00:00:00Z"
    assert st["status"] == "open"


def test_target_sets_the_denominator() -> None:
    st = _status(
        [_task("c1", "completed"), _task("c2", "completed")], GoalDef(title="G", target=10)
    )
    assert st["progress_percent"] == 20.0 and st["remaining"] == 8
    over = _status([_task(f"c{i}", "completed") for i in range(4)], GoalDef(title="G", target=3))
    assert over["progress"] == 1.0 and over["status"] == "done"
    assert over["predicted_completion"] is None


def test_empty_goal_is_zero_not_an_error() -> None:
    st = _status([], GoalDef(title="Nothing yet"))
    assert (st["progress"], st["status"], st["predicted_completion"]) == (0.0, "empty", None)
    only_cancelled = _status([_task("x", "cancelled")], GoalDef(title="G"))
    assert only_cancelled["progress"] == 0.0 and only_cancelled["status"] == "empty"


def test_no_recent_completions_means_no_prediction() -> None:
    st = _status(
        [_task("p1", "pending"), _task("c", "completed", finished_at="2026-01-02T00:00:00Z")],
        GoalDef(title="G", deadline="2026-04-01"),
    )
    assert st["rate_per_day"] == 0 and st["predicted_completion"] is None
    assert st["deadline"] == "2026-04-01T23:59:59Z" and st["on_track"] is False


def test_selectors_link_by_label_spec_or_type() -> None:
    tasks = [
        _task("a", "completed", goal_id=None, labels=["v1", "ui"]),
        _task("b", "pending", goal_id=None, labels=["v10"]),
        _task("c", "pending", goal_id=None, labels=["v1"], task_type="impl"),
        _task("d", "pending", goal_id=None, spec="specs/026.md"),
    ]
    assert _status(tasks, GoalDef(title="G", label="v1"))["linked"] == 2
    assert _status(tasks, GoalDef(title="G", label="v1", task_type="impl"))["linked"] == 1
    assert _status(tasks, GoalDef(title="G", spec="specs/026.md"))["linked"] == 1
    assert _status(tasks, GoalDef(title="G", label="v_"))["linked"] == 0  # LIKE is escaped


def test_goals_api_and_config(router_client: RouterClient) -> None:
    store = make_store(tasks=[_task("c1", "completed"), _task("p1", "pending")])
    cfg = make_config({"reviewer": {"api_token": "t"}, "goals": {"g": {"title": "From config"}}})
    with router_client(cfg, store, NOW, router) as client:
        goals = client.get("/api/goals").json()["goals"]
        assert [(g["id"], g["progress_percent"]) for g in goals] == [("g", 50.0)]
        body = {"id": "api-goal", "title": "Via API", "target": 4, "deadline": "2026-04-01"}
        assert client.post("/api/goals", json=body).status_code == 401
        r = client.post("/api/goals", json=body, headers={"Authorization": "Bearer t"})
        assert r.status_code == 201
        bad = client.post("/api/goals", json={"id": "x"}, headers={"Authorization": "Bearer t"})
        assert bad.status_code == 422 and "title" in bad.text
        ids = [g["id"] for g in client.get("/api/goals").json()["goals"]]
        assert ids == ["api-goal", "g"]
    store.close()
