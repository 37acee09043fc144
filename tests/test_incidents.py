"""Incidents (symptoms grouped behind one cause), bursts, and approvals that change the backlog."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import rules
from reviewer.config import ConfigError
from reviewer.engine import Engine
from reviewer.incidents import IncidentSettings, Matcher, group, labels_of
from store import Store
from store.timeutil import fmt_ts, parse_ts
from tests.pg import fresh_schema_url
from tests.support import make_config, make_store, task_rows

NOW = parse_ts("2026-03-10T12:00:00Z")


class Clock:
    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def only(*rule_ids: str, **tables: Any) -> dict[str, Any]:
    """Config enabling only ``rule_ids`` (their tables from ``tables``, by module name)."""
    out: dict[str, Any] = {r: {"enabled": False} for r in rules.REGISTRY if r not in rule_ids}
    for r in rule_ids:
        out[r] = tables.get(r.replace("-", "_"), {})
    return out


def engine_for(store: Store, data: dict[str, Any], at: datetime = NOW) -> Engine:
    return Engine(make_config(data), store, clock=Clock(at))


# -- a broken executor -----------------------------------------------------------------
def broken_executor() -> dict[str, Any]:
    """Executor ``bad`` fails all its runs; three tasks hang on it and one failed 3 times."""
    metrics = []
    for i in range(30):
        at = fmt_ts(NOW - timedelta(minutes=10 * i + 5))
        ex = "bad" if i % 3 == 0 else "good"
        metrics.append(
            {
                "task_id": f"m{i}",
                "task_type": "impl",
                "model": "m1",
                "executor": ex,
                "duration_seconds": 60,
                "status": "failed" if ex == "bad" else "completed",
                "error": "runner bad: No space left on device" if ex == "bad" else None,
                "created_at": at,
            }
        )
    started = fmt_ts(NOW - timedelta(hours=5))
    tasks = [
        {
            "id": f"stuck{i}",
            "title": f"Hung task {i}",
            "task_type": "impl",
            "status": "running",
            "executor": "bad",
            "model": "m1",
            "created_at": started,
            "started_at": started,
        }
        for i in range(3)
    ]
    tasks.append(
        {
            "id": "dead1",
            "title": "Failing task",
            "task_type": "impl",
            "status": "failed",
            "attempts": 3,
            "executor": "bad",
            "model": "m1",
            "created_at": started,
            "finished_at": fmt_ts(NOW - timedelta(hours=1)),
            "error": "runner bad: No space left on device",
        }
    )
    return {"tasks": tasks, "metrics": metrics}


def stuck_config(**extra: Any) -> dict[str, Any]:
    data = {
        "reviewer": {"resolve_after_cycles": 1},
        "rules": only("stuck-phases", stuck_phases={"timeouts": {"impl": "1h"}}),
    }
    data.update(extra)
    return data


@pytest.fixture
def store() -> Iterator[Store]:
    s = make_store(**broken_executor())
    yield s
    s.close()


def created(result: Any) -> list[dict[str, Any]]:
    return [p for p in result.proposals if p["change"] == "created"]


def test_broken_executor_is_one_incident_with_one_task(store: Store) -> None:
    engine = engine_for(store, stuck_config())
    result = engine.review(NOW)
    kinds = sorted((f["kind"], f["subject"]) for f in result.findings)
    assert kinds == [
        ("error-rate", "executor:bad"),
        ("repeated-failure", "dead1"),
        ("stuck", "stuck0"),
        ("stuck", "stuck1"),
        ("stuck", "stuck2"),
    ]
    # Five symptoms, one proposal: the incident's.
    assert [(p["kind"], p["subject"]) for p in created(result)] == [("incident", "executor:bad")]
    incident_id = created(result)[0]["incident"]
    assert all(f["incident"] == incident_id and f["inhibited"] for f in result.findings)
    rows = engine.state.list_incidents()
    assert len(rows) == 1 and rows[0]["key"] == "executor:bad"
    cause = next(f for f in result.findings if f["kind"] == "error-rate")
    assert rows[0]["cause"] == cause["fingerprint"]
    proposal = engine.state.proposal(created(result)[0]["id"])
    assert "likeliest cause is critical stuck-phases/error-rate executor:bad" in proposal.body
    for subject in ("stuck0", "stuck1", "stuck2", "dead1"):
        assert subject in proposal.body
    audit = [r["action"] for r in engine.state.audit_log()]
    assert "incident.opened" in audit

    # Approved, it files one heal task; a second cycle files nothing more.
    engine.approve(proposal.id, by="alice", reason="disk full on bad")
    filed = store.query("SELECT id, task_type FROM tasks WHERE source = 'reviewer'")
    assert filed == [{"id": f"reviewer-{proposal.id}", "task_type": "heal"}]
    again = engine.review(NOW + timedelta(minutes=15))
    assert created(again) == []
    assert store.query("SELECT COUNT(*) AS n FROM tasks WHERE source = 'reviewer'") == [{"n": 1}]

    # The executor recovers (its failures leave the window); the hung tasks do not.
    later = engine.review(NOW + timedelta(hours=7))
    assert "error-rate" not in {f["kind"] for f in later.findings}
    assert engine.state.list_incidents() == []  # none open
    resolved = engine.state.list_incidents(state="resolved")
    assert [r["id"] for r in resolved] == [incident_id]
    assert "incident.resolved" in [r["action"] for r in engine.state.audit_log()]
    # Inhibition lifted: the symptoms that remain are judged again on their own.
    assert sorted(p["subject"] for p in created(later)) == ["dead1", "stuck0", "stuck1", "stuck2"]
    assert all("incident" not in f for f in later.findings)


def test_pending_symptom_proposals_give_way_to_the_incident(store: Store) -> None:
    # Without incidents, every symptom gets its own proposal ...
    engine = engine_for(store, stuck_config(incidents={"enabled": False}))
    first = engine.review(NOW)
    assert len(created(first)) == 5
    # ... once grouping is on, they are superseded with a pointer to the incident.
    engine = engine_for(store, stuck_config())
    second = engine.review(NOW + timedelta(minutes=15))
    superseded = [p for p in second.proposals if p["change"] == "superseded"]
    assert len(superseded) == 5
    incident = created(second)[0]
    assert incident["kind"] == "incident"
    assert {p["incident"] for p in superseded} == {incident["incident"]}
    reasons = store.query("SELECT reason FROM reviewer_audit WHERE action = 'proposal.superseded'")
    assert all(f"inhibited by incident {incident['incident']}" in r["reason"] for r in reasons)


def test_incident_holds_while_its_cause_fires(store: Store) -> None:
    engine = engine_for(store, stuck_config())
    [incident] = created(engine.review(NOW))
    # The hung tasks are killed; the executor still fails everything.
    done = fmt_ts(NOW + timedelta(minutes=10))
    store.upsert_tasks(
        task_rows(
            {**t, "status": "cancelled", "updated_at": done, "finished_at": done}
            for t in broken_executor()["tasks"]
            if t["id"].startswith("stuck")
        )
    )
    later = engine.review(NOW + timedelta(minutes=15))
    assert sorted(f["kind"] for f in later.findings) == ["error-rate", "repeated-failure"]
    assert created(later) == []  # the cause does not get a second proposal of its own
    [row] = engine.state.list_incidents()
    assert row["id"] == incident["incident"] and len(json.loads(row["members"])) == 2


def test_rejecting_an_incident_releases_its_members(store: Store) -> None:
    engine = engine_for(store, stuck_config())
    [incident] = created(engine.review(NOW))
    engine.reject(incident["id"], by="alice", reason="not one cause")
    later = engine.review(NOW + timedelta(minutes=15))
    assert len(created(later)) == 5
    assert all("inhibited" not in f for f in later.findings)
    assert created(engine.review(NOW + timedelta(minutes=30))) == []  # no new incident proposal


def test_findings_of_rules_on_approval_off_form_no_incident(store: Store) -> None:
    data = stuck_config()
    data["rules"]["stuck-phases"]["approval"] = "off"
    result = engine_for(store, data).review(NOW)
    assert len(result.findings) == 5 and result.proposals == []


@pytest.mark.parametrize(
    ("incidents", "proposals"),
    [
        ({}, 1),
        ({"group_by": ["model"]}, 5),  # executors are not a grouping key: no incident
        ({"min_findings": 6}, 5),  # five findings are not enough
        (  # only stuck tasks are explained by the executor: the others stand alone
            {
                "inhibit_rules": [
                    {
                        "source_matchers": ["scope=executor", "severity>=error"],
                        "target_matchers": ["kind=stuck"],
                        "equal": ["executor"],
                    }
                ]
            },
            2,
        ),
    ],
)
def test_grouping_config_changes_the_outcome(
    store: Store, incidents: dict[str, Any], proposals: int
) -> None:
    result = engine_for(store, stuck_config(incidents=incidents)).review(NOW)
    assert len(created(result)) == proposals


def test_cli_and_api_show_incidents_and_membership(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from fastapi.testclient import TestClient

    from reviewer.api import create_app
    from reviewer.app import App
    from reviewer.cli import cli

    db = tmp_path / "p.db"
    make_store(path=str(db), **broken_executor()).close()
    cfg = tmp_path / "config.toml"
    disabled = "".join(
        f"[rules.{r}]\nenabled = false\n" for r in rules.REGISTRY if r != "stuck-phases"
    )
    cfg.write_text(
        f'[reviewer]\nstore = "sqlite:///{db}"\n'
        f'[rules.stuck-phases]\ntimeouts = {{ impl = "1h" }}\n{disabled}'
    )

    def run(*args: str) -> Any:
        result = CliRunner().invoke(cli, ["--config", str(cfg), *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    review = json.loads(run("review", "--once", "--json", "--now", fmt_ts(NOW)))
    [proposal] = [p for p in review["proposals"] if p["change"] == "created"]
    incident_id = proposal["incident"]
    assert {f["incident"] for f in review["findings"]} == {incident_id}
    assert all(f["inhibited"] for f in review["findings"])

    [incident] = json.loads(run("incidents", "list", "--json"))
    assert incident["id"] == incident_id and incident["key"] == "executor:bad"
    assert incident["likeliest_cause"] == "stuck-phases/error-rate executor:bad"
    assert len(incident["members"]) == 5
    assert incident["proposal"] == {"id": proposal["id"], "state": "pending", "task_id": None}
    assert "executor:bad" in run("incidents", "list")
    findings = json.loads(run("findings", "list", "--json"))
    assert {f["incident"] for f in findings} == {incident_id}
    assert "no incidents" in run("incidents", "list", "--state", "resolved")

    app = App.from_config(make_config({"reviewer": {"store": f"sqlite:///{db}"}}))
    with TestClient(create_app(app)) as client:
        got = client.get("/api/incidents").json()
        assert [i["id"] for i in got] == [incident_id]
        assert client.get("/api/incidents", params={"state": "resolved"}).json() == []
        assert client.get("/api/incidents", params={"state": "bogus"}).status_code == 422
        assert {f["incident"] for f in client.get("/api/findings").json()} == {incident_id}
    app.close()


def test_bad_incident_config_is_a_message() -> None:
    with pytest.raises(ConfigError, match=r"\[incidents\].*matcher 'severity>=urgent'"):
        make_config(
            {
                "incidents": {
                    "inhibit_rules": [
                        {"source_matchers": ["severity>=urgent"], "equal": ["executor"]}
                    ]
                }
            }
        )
    with pytest.raises(ConfigError, match=r"\[incidents\] unknown option 'group'"):
        make_config({"incidents": {"group": ["executor"]}})


def test_matchers_and_labels() -> None:
    labels = labels_of(
        {
            "rule": "stuck-phases",
            "kind": "stuck",
            "severity": "error",
            "subject": "t1",
            "evidence": {"executor": "bad", "model": "m1", "attempts": 2},
        },
        ["executor", "model"],
    )
    assert labels["executor"] == "bad" and labels["symptom"] == "true" and "scope" not in labels
    assert Matcher.parse("severity>=warning").matches(labels)
    assert not Matcher.parse("severity>=critical").matches(labels)
    assert Matcher.parse("kind=~stu.*").matches(labels)
    assert Matcher.parse("phase!=x").matches(labels)  # a missing label is ""
    scoped = labels_of({"rule": "x", "kind": "k", "severity": "info", "subject": "model:a:b"}, [])
    assert scoped["scope"] == "model" and scoped["model"] == "a:b"
    test_id = labels_of({"rule": "x", "kind": "k", "severity": "info", "subject": "a.B::c"}, [])
    assert "scope" not in test_id


def test_a_finding_joins_the_most_severe_incident_only() -> None:
    def row(subject: str, severity: str, **evidence: str) -> dict[str, Any]:
        payload = {
            "rule": "stuck-phases",
            "kind": "error-rate" if ":" in subject else "stuck",
            "severity": severity,
            "subject": subject,
            "evidence": evidence,
        }
        return {"payload": json.dumps(payload), "severity": severity, "first_seen": "x"}

    rows = {
        "e": row("executor:bad", "critical"),
        "m": row("model:m1", "error"),
        "s1": row("s1", "warning", executor="bad", model="m1"),
        "s2": row("s2", "warning", model="m1"),
    }
    found = group(IncidentSettings(), rows)
    assert found[0] == ("executor:bad", "e", ["e", "s1"])
    assert found[1] == ("model:m1", "m", ["m", "s2"])


# -- bursts ----------------------------------------------------------------------------
def stale_tasks(n: int) -> list[dict[str, Any]]:
    at = fmt_ts(NOW - timedelta(days=10))
    return [{"id": f"old{i}", "title": f"Old task {i}", "created_at": at} for i in range(n)]


def test_a_flood_of_one_rule_is_one_summary_proposal() -> None:
    store = make_store(tasks=stale_tasks(7))
    engine = engine_for(store, {"reviewer": {"burst_limit": 5}, "rules": only("stale-queue")})
    first = engine.review(NOW)
    assert len(first.findings) == 7
    made = created(first)
    assert [(p["kind"], p["subject"]) for p in made] == [("burst", "rule:stale-queue")]
    body = engine.state.proposal(made[0]["id"]).body
    assert "something is wrong with stale-queue" in body
    assert all(f"old{i}" in body for i in range(7))
    assert all(f["incident"] == made[0]["incident"] for f in first.findings)
    assert "burst.opened" in [r["action"] for r in engine.state.audit_log()]
    # Next cycle: still waiting behind the burst, nothing new.
    assert created(engine.review(NOW + timedelta(minutes=15))) == []
    # Approved, the summary files one task.
    engine.approve(made[0]["id"], by="alice")
    assert store.query("SELECT COUNT(*) AS n FROM tasks WHERE source = 'reviewer'") == [{"n": 1}]
    store.close()


def test_rejecting_a_burst_files_its_findings_one_by_one() -> None:
    store = make_store(tasks=stale_tasks(7))
    engine = engine_for(store, {"reviewer": {"burst_limit": 5}, "rules": only("stale-queue")})
    [burst] = created(engine.review(NOW))
    engine.reject(burst["id"], by="alice", reason="they are unrelated")
    assert len(created(engine.review(NOW + timedelta(minutes=15)))) == 7
    store.close()


def test_burst_limit_per_rule_overrides_the_default() -> None:
    store = make_store(tasks=stale_tasks(7))
    data = {
        "reviewer": {"burst_limit": 5},
        "rules": only("stale-queue", stale_queue={"burst_limit": 7}),
    }
    assert len(created(engine_for(store, data).review(NOW))) == 7
    store.close()


def test_burst_resolves_when_its_findings_clear_and_new_ones_file_one_by_one() -> None:
    store = make_store(tasks=stale_tasks(7))
    data = {"reviewer": {"burst_limit": 5, "resolve_after_cycles": 1}, "rules": only("stale-queue")}
    engine = engine_for(store, data)
    engine.review(NOW)
    done = fmt_ts(NOW + timedelta(minutes=5))
    store.upsert_tasks(
        task_rows(
            {**t, "status": "completed", "updated_at": done, "finished_at": done}
            for t in stale_tasks(7)
        )
    )
    later = engine.review(NOW + timedelta(hours=1))
    assert [p["change"] for p in later.proposals] == ["resolved"]
    assert engine.state.list_incidents() == []
    store.close()


# -- approvals that change the backlog ---------------------------------------------------
def reorder_store(url: str | None = None) -> Store:
    at = fmt_ts(NOW - timedelta(hours=2))
    return make_store(
        url=url,
        tasks=[
            {
                "id": "h",
                "title": "Urgent",
                "priority": "high",
                "depends_on": ["l"],
                "created_at": at,
            },
            {"id": "l", "title": "Someday", "priority": "low", "created_at": at},
        ],
    )


def approve_reorder(store: Store) -> None:
    engine = engine_for(store, {"rules": only("priorities")})
    result = engine.review(NOW)
    [proposal] = created(result)
    assert (proposal["kind"], proposal["subject"]) == ("reorder", "l")
    done = engine.approve(proposal["id"], by="alice", reason="yes, it blocks h")
    assert done.state.value == "scheduled" and done.task_id == "l"
    task = store.get_task("l")
    assert task is not None and task["priority"] == "high"
    # No task filed: the change is the action.
    assert store.query("SELECT COUNT(*) AS n FROM tasks") == [{"n": 2}]
    audit = store.query(
        "SELECT actor, reason, details FROM reviewer_audit WHERE action = 'task.priority-changed'"
    )
    assert audit[0]["actor"] == "alice"
    assert json.loads(audit[0]["details"]) == {"task_id": "l", "from": "low", "to": "high"}
    touched = store.query("SELECT task_id FROM reviewer_task_touches")
    assert touched == [{"task_id": "l"}]
    # Approving again is harmless, and the finding clears.
    assert engine.approve(proposal["id"], by="alice").task_id == "l"
    assert [f["kind"] for f in engine.review(NOW + timedelta(minutes=15)).findings] == []


def test_approved_reorder_changes_the_priority_sqlite() -> None:
    store = reorder_store()
    approve_reorder(store)
    store.close()


@pytest.mark.postgres
def test_approved_reorder_changes_the_priority_postgres() -> None:
    with fresh_schema_url() as url:
        store = reorder_store(url)
        try:
            approve_reorder(store)
        finally:
            store.close()


def test_a_store_that_cannot_change_a_task_files_one_instead() -> None:
    store = reorder_store()
    store.set_task_priority = lambda *a: None  # type: ignore[method-assign]  # as HTTPStore
    engine = engine_for(store, {"rules": only("priorities")})
    [proposal] = created(engine.review(NOW))
    done = engine.approve(proposal["id"], by="alice")
    assert done.task_id == f"reviewer-{proposal['id']}"
    task = store.get_task("l")
    assert task is not None and task["priority"] == "low"
    store.close()


@pytest.mark.slow
def test_the_demo_shows_an_incident_on_its_broken_executor(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from reviewer.cli import cli

    result = CliRunner().invoke(cli, ["demo", "--db", str(tmp_path / "demo.db"), "--json"])
    assert result.exit_code == 0, result.output
    review = json.loads(result.stdout)["review"]
    [incident] = [p for p in review["proposals"] if p["kind"] == "incident"]
    assert incident["subject"] == "executor:runner-c"
    members = {
        (f["kind"], f["subject"]) for f in review["findings"] if f.get("incident") is not None
    }
    assert members == {
        ("error-rate", "executor:runner-c"),
        ("stuck", "task-stuck-c1"),
        ("repeated-failure", "task-fail-c1"),
    }
    # Everything else still gets its own proposal (the demo's burst_limit keeps them).
    assert not any(p["kind"] == "burst" for p in review["proposals"])
