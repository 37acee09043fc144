"""The review loop: dedup, cooldown, cap, resolve, regress, silence, crash isolation."""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

import rules
from reviewer.engine import Engine
from rules import Finding
from rules.contract import RuleOptions
from store import ProposalState
from store.sqlite import SQLiteStore
from store.state import InvalidTransition
from store.timeutil import fmt_ts, parse_ts
from tests.support import make_config, task_rows

T0 = parse_ts("2026-03-01T00:00:00Z")


def stale_task(task_id: str, priority: str = "high", **extra: Any) -> dict[str, Any]:
    return {
        "id": task_id,
        "title": f"Task {task_id}",
        "priority": priority,
        "created_at": fmt_ts(T0),
        **extra,
    }


class Clock:
    """A settable clock for the engine (decisions are stamped with it)."""

    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def engine_for(
    store: SQLiteStore, rules_cfg: dict[str, Any] | None = None, **reviewer: Any
) -> Engine:
    only = {r: {"enabled": False} for r in rules.REGISTRY if r != "stale-queue"}
    only.update(rules_cfg or {})
    cfg = make_config({"reviewer": reviewer, "rules": only})
    return Engine(cfg, store, clock=Clock(T0 + timedelta(days=10)))


def proposals(store: SQLiteStore, state: str | None = None) -> list[dict[str, Any]]:
    sql = (
        "SELECT * FROM reviewer_proposals" + (" WHERE state = :s" if state else "") + " ORDER BY id"
    )
    return store.query(sql, {"s": state})


def backlog_tasks_by_reviewer(store: SQLiteStore) -> list[dict[str, Any]]:
    return store.query("SELECT * FROM tasks WHERE source = 'reviewer' ORDER BY id")


def test_second_cycle_on_unchanged_data_creates_no_new_proposal(store: SQLiteStore) -> None:
    store.upsert_tasks(task_rows([stale_task("t1"), stale_task("t2")]))
    engine = engine_for(store)
    first = engine.review(T0 + timedelta(days=10))
    second = engine.review(T0 + timedelta(days=10, hours=1))
    assert [p["change"] for p in first.proposals] == ["created", "created"]
    assert [p for p in second.proposals if p["change"] == "created"] == []
    assert len(proposals(store)) == 2
    assert {f["status"] for f in second.findings} == {"ongoing"}


def test_rejected_proposal_is_not_reproposed_within_cooldown(store: SQLiteStore) -> None:
    store.upsert_tasks(task_rows([stale_task("t1")]))
    engine = engine_for(store, reject_cooldown="7d")
    engine.review(T0 + timedelta(days=10))
    (p,) = proposals(store)
    engine.reject(p["id"], by="alice", reason="we keep it on purpose")
    engine.review(T0 + timedelta(days=12))
    assert len(proposals(store)) == 1
    # After the cooldown (decided at the clock's time, day 10) it may come back.
    engine.review(T0 + timedelta(days=17, hours=1))
    rows = proposals(store)
    assert [r["state"] for r in rows] == ["rejected", "pending"]
    audit = store.query(
        "SELECT actor, action, reason FROM reviewer_audit WHERE proposal_id = :p", {"p": p["id"]}
    )
    assert {
        "actor": "alice",
        "action": "proposal.rejected",
        "reason": "we keep it on purpose",
    } in audit


def test_approve_schedules_exactly_one_backlog_task_even_twice(store: SQLiteStore) -> None:
    store.upsert_tasks(task_rows([stale_task("t1")]))
    engine = engine_for(store)
    engine.review(T0 + timedelta(days=10))
    (p,) = proposals(store)
    first = engine.approve(p["id"], by="bob", reason="yes")
    again = engine.approve(p["id"], by="bob", reason="clicked twice")
    assert first.state == again.state == ProposalState.scheduled
    (task,) = backlog_tasks_by_reviewer(store)
    assert task["id"] == first.task_id == "reviewer-1"
    # Idle 9 days against a 3-day limit escalates to "error", filed as "high" priority.
    assert (task["status"], task["priority"]) == ("pending", "high")
    assert json.loads(task["extra"])["proposal_id"] == p["id"]
    assert (
        "## What was seen" in task["description"] and "reviewer silence add" in task["description"]
    )
    # The subject task is labelled, and that update is not counted as activity.
    subject = store.get_task("t1")
    assert subject is not None and "reviewer:stale-queue" in json.loads(subject["labels"])
    engine.review(T0 + timedelta(days=10, hours=2))
    assert len(backlog_tasks_by_reviewer(store)) == 1
    assert proposals(store)[0]["state"] == "scheduled"


def test_reject_after_schedule_is_refused(store: SQLiteStore) -> None:
    store.upsert_tasks(task_rows([stale_task("t1")]))
    engine = engine_for(store)
    engine.review(T0 + timedelta(days=10))
    engine.approve(1, by="bob")
    with pytest.raises(InvalidTransition, match="scheduled"):
        engine.reject(1, by="carol")


def test_cap_holds_back_and_releases_highest_severity_first(store: SQLiteStore) -> None:
    # t0..t4 idle 10 days: "normal" (limit 7d, warning) and "critical" (limit 1d, error).
    tasks = [stale_task(f"n{i}", "normal") for i in range(3)]
    tasks += [stale_task(f"c{i}", "critical") for i in range(2)]
    store.upsert_tasks(task_rows(tasks))
    engine = engine_for(store, max_new_proposals_per_cycle=2)
    first = engine.review(T0 + timedelta(days=10))
    created = [p for p in first.proposals if p["change"] == "created"]
    assert {p["subject"] for p in created} == {"c0", "c1"}
    assert first.held_back == 3
    assert any("held back 3" in n for n in first.notes)
    second = engine.review(T0 + timedelta(days=10, hours=1))
    assert len([p for p in second.proposals if p["change"] == "created"]) == 2
    assert second.held_back == 1
    third = engine.review(T0 + timedelta(days=10, hours=2))
    assert len([p for p in third.proposals if p["change"] == "created"]) == 1
    assert third.held_back == 0
    runs = store.query("SELECT held_back FROM reviewer_runs ORDER BY id")
    assert [r["held_back"] for r in runs] == [3, 1, 0]


def test_cleared_finding_resolves_with_its_pending_proposal(store: SQLiteStore) -> None:
    store.upsert_tasks(task_rows([stale_task("t1")]))
    engine = engine_for(store, resolve_after_cycles=2)
    engine.review(T0 + timedelta(days=10))
    # The pipeline picks the task up.
    store.upsert_tasks(
        task_rows(
            [
                stale_task(
                    "t1", status="running", started_at=fmt_ts(T0 + timedelta(days=10, hours=1))
                )
            ]
        )
    )
    one = engine.review(T0 + timedelta(days=10, hours=2))
    assert one.resolved == [] and proposals(store)[0]["state"] == "pending"
    two = engine.review(T0 + timedelta(days=10, hours=3))
    assert len(two.resolved) == 1
    assert proposals(store)[0]["state"] == "resolved"
    (finding,) = store.query("SELECT state, resolved_at FROM reviewer_findings")
    assert finding["state"] == "resolved"


def test_regression_reopens_and_proposes_again(store: SQLiteStore) -> None:
    store.upsert_tasks(task_rows([stale_task("t1")]))
    engine = engine_for(store, resolve_after_cycles=1)
    engine.review(T0 + timedelta(days=10))
    engine.approve(1, by="bob")
    # The filed task gets done; the subject task is touched by the pipeline: finding clears.
    store.execute(
        "UPDATE tasks SET status = 'completed', finished_at = :at WHERE id = 'reviewer-1'",
        {"at": fmt_ts(T0 + timedelta(days=10, hours=5))},
    )
    store.upsert_tasks(
        task_rows([stale_task("t1", updated_at=fmt_ts(T0 + timedelta(days=10, hours=6)))])
    )
    cleared = engine.review(T0 + timedelta(days=11))
    assert len(cleared.resolved) == 1
    # Idle again for more than the limit: it regresses.
    back = engine.review(T0 + timedelta(days=14))
    assert [f["status"] for f in back.findings] == ["regressed"]
    rows = proposals(store)
    assert [r["state"] for r in rows] == ["superseded", "pending"]
    assert rows[1]["regression_of"] == rows[0]["id"]
    assert rows[1]["title"].startswith("Regressed:")


def test_silenced_finding_is_recorded_but_proposes_nothing(store: SQLiteStore) -> None:
    from store.state import ReviewerState

    store.upsert_tasks(task_rows([stale_task("t1"), stale_task("t2")]))
    with store.transaction():
        ReviewerState(store).add_silence(
            rule="stale-*",
            subject="t1",
            until="2026-04-01T00:00:00Z",
            by="alice",
            comment="parked until April",
            at=fmt_ts(T0),
        )
    result = engine_for(store).review(T0 + timedelta(days=10))
    by_subject = {f["subject"]: f for f in result.findings}
    assert by_subject["t1"]["silenced_by"] == 1 and by_subject["t2"]["silenced_by"] is None
    assert [p["subject"] for p in proposals(store)] == ["t2"]
    (audit,) = store.query("SELECT * FROM reviewer_audit WHERE action = 'finding.silenced'")
    assert (audit["actor"], audit["subject"], audit["reason"]) == (
        "alice",
        "t1",
        "parked until April",
    )
    # After the silence ends, it proposes.
    engine_for(store).review(parse_ts("2026-04-02T00:00:00Z"))
    assert {p["subject"] for p in proposals(store)} == {"t1", "t2"}


def test_auto_approval_schedules_at_once_and_off_only_reports(store: SQLiteStore) -> None:
    store.upsert_tasks(task_rows([stale_task("t1")]))
    auto = engine_for(store, {"stale-queue": {"approval": "auto"}}).review(T0 + timedelta(days=10))
    assert auto.proposals[0]["state"] == "scheduled"
    assert len(backlog_tasks_by_reviewer(store)) == 1
    audit = store.query("SELECT action FROM reviewer_audit WHERE proposal_id = 1 ORDER BY id")
    assert [a["action"] for a in audit] == [
        "proposal.created",
        "proposal.approved",
        "proposal.scheduled",
    ]


def test_approval_off_reports_findings_only(store: SQLiteStore) -> None:
    store.upsert_tasks(task_rows([stale_task("t1")]))
    off = engine_for(store, {"stale-queue": {"approval": "off"}}).review(T0 + timedelta(days=10))
    assert len(off.findings) == 1 and off.proposals == []
    assert proposals(store) == []


def test_dry_run_writes_nothing(store: SQLiteStore) -> None:
    store.upsert_tasks(task_rows([stale_task("t1")]))
    result = engine_for(store, {"stale-queue": {"approval": "auto"}}).review(
        T0 + timedelta(days=10), dry_run=True
    )
    assert result.run_id is None and len(result.findings) == 1
    assert result.proposals and result.proposals[0]["change"] == "created"
    for table in ("reviewer_runs", "reviewer_findings", "reviewer_proposals", "reviewer_audit"):
        assert store.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"] == 0, table
    assert backlog_tasks_by_reviewer(store) == []


class _BoomOptions(RuleOptions):
    pass


def _boom_check(options: Any, view: Any) -> Iterator[Finding]:
    yield Finding(kind="x", subject="s", summary="partial", evidence={"a": 1})
    raise RuntimeError("exploded on bad data")


def test_crashing_rule_leaves_the_others_intact(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    boom = types.SimpleNamespace(ID="boom", Options=_BoomOptions, DEFAULTS={}, check=_boom_check)
    monkeypatch.setitem(rules.REGISTRY, "boom", boom)
    store.upsert_tasks(task_rows([stale_task("t1")]))
    result = engine_for(store, {"boom": {}}).review(T0 + timedelta(days=10))
    assert result.status == "partial"
    assert [e["rule"] for e in result.errors] == ["boom"]
    assert "exploded on bad data" in result.errors[0]["error"]
    assert [f["rule"] for f in result.findings] == ["stale-queue"]
    assert len(proposals(store)) == 1
    (run,) = store.query("SELECT status, errors FROM reviewer_runs")
    assert run["status"] == "partial" and "boom" in run["errors"]


def test_failed_rule_does_not_resolve_its_open_findings(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.upsert_tasks(task_rows([stale_task("t1")]))
    engine_for(store, resolve_after_cycles=1).review(T0 + timedelta(days=10))

    def broken(options: Any, view: Any) -> Iterator[Finding]:
        raise ValueError("store returned garbage")

    monkeypatch.setattr(rules.REGISTRY["stale-queue"], "check", broken)
    result = engine_for(store, resolve_after_cycles=1).review(T0 + timedelta(days=10, hours=1))
    assert result.resolved == []
    assert store.query("SELECT state FROM reviewer_findings")[0]["state"] == "open"
    assert proposals(store)[0]["state"] == "pending"


def test_time_travel_review_matches_the_past(store: SQLiteStore) -> None:
    """As of day 3 the high task was not yet stale; as of day 5 it was, though it ran later."""
    store.upsert_tasks(
        task_rows(
            [
                stale_task(
                    "t1",
                    status="completed",
                    started_at=fmt_ts(T0 + timedelta(days=6)),
                    finished_at=fmt_ts(T0 + timedelta(days=6, hours=1)),
                )
            ]
        )
    )
    engine = engine_for(store)
    assert engine.review(T0 + timedelta(days=2), dry_run=True).findings == []
    assert [f["subject"] for f in engine.review(T0 + timedelta(days=5), dry_run=True).findings] == [
        "t1"
    ]
    assert engine.review(T0 + timedelta(days=7), dry_run=True).findings == []
