"""Did the fixes help: outcomes of filed tasks, the precision ledger, the breaker, hints.

The engine is driven with explicit ``now``s; decisions are stamped by a settable clock.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import rules
from reviewer.api import report as report_api
from reviewer.app import App
from reviewer.cli import cli
from reviewer.engine import Engine
from reviewer.ledger import ledger
from rules import Finding
from rules.contract import RuleOptions
from store.sqlite import SQLiteStore
from store.timeutil import fmt_ts, parse_ts
from tests.conftest import RouterClient
from tests.support import make_config, task_rows

T0 = parse_ts("2026-03-01T00:00:00Z")
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


class Clock:
    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def stale_task(task_id: str, **extra: Any) -> dict[str, Any]:
    """A high-priority task idle since T0: stale-queue flags it after 3 days."""
    return {
        "id": task_id,
        "title": f"Task {task_id}",
        "priority": "high",
        "created_at": fmt_ts(T0),
        **extra,
    }


def config_data(db: Path | None = None, **reviewer: Any) -> dict[str, Any]:
    only: dict[str, Any] = {r: {"enabled": False} for r in rules.REGISTRY if r != "stale-queue"}
    settings = {
        "resolve_after_cycles": 1,
        "outcome_cycles": 2,
        "outcome_clear_for": "2d",
        **reviewer,
    }
    if db is not None:
        settings["store"] = f"sqlite:///{db}"
    return {"reviewer": settings, "rules": only}


def engine_for(store: SQLiteStore, clock: Clock, **reviewer: Any) -> Engine:
    return Engine(make_config(config_data(**reviewer)), store, clock=clock)


def finish_task(store: SQLiteStore, task_id: str, status: str, at: datetime) -> None:
    store.execute(
        "UPDATE tasks SET status = :s, finished_at = :at, updated_at = :at WHERE id = :id",
        {"s": status, "at": fmt_ts(at), "id": task_id},
    )


def touch(store: SQLiteStore, task_id: str, at: datetime) -> None:
    """The pipeline works on the subject task: stale-queue's finding clears."""
    store.upsert_tasks(task_rows([stale_task(task_id, updated_at=fmt_ts(at))]))


def outcome_audit(store: SQLiteStore) -> list[dict[str, Any]]:
    return store.query(
        """SELECT proposal_id, actor, from_state, to_state, reason FROM reviewer_audit
           WHERE action = 'proposal.outcome' ORDER BY id"""
    )


def approved_and_filed(store: SQLiteStore, clock: Clock, subject: str = "t1") -> tuple[Engine, int]:
    """Day 10: the stale task is found; alice approves; task reviewer-<id> is filed."""
    store.upsert_tasks(task_rows([stale_task(subject)]))
    engine = engine_for(store, clock)
    clock.at = T0 + 10 * DAY
    result = engine.review(clock.at)
    (created,) = [p for p in result.proposals if p["change"] == "created"]
    proposal = engine.approve(created["id"], by="alice", reason="worth doing")
    assert proposal.task_id == f"reviewer-{created['id']}"
    return engine, created["id"]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "pipeline.db")
    yield s
    s.close()


def report_json(tmp_path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """``reviewer report --json`` run on the test's store through the command line."""
    cfg = tmp_path / "config.toml"
    lines = ["[reviewer]"]
    for key, value in data["reviewer"].items():
        lines.append(f"{key} = {json.dumps(value)}")
    for rule_id, table in data["rules"].items():
        lines.append(f'[rules."{rule_id}"]')
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    cfg.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(cli, ["--config", str(cfg), "report", "--json"])
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.output)
    return out


def rule_entry(report: dict[str, Any], rule_id: str = "stale-queue") -> dict[str, Any]:
    (entry,) = [r for r in report["rules"] if r["rule"] == rule_id]
    return entry


def test_completed_task_whose_finding_clears_and_stays_clear_is_fixed(
    db: SQLiteStore, tmp_path: Path, router_client: RouterClient
) -> None:
    clock = Clock(T0)
    engine, pid = approved_and_filed(db, clock)
    done = T0 + 10 * DAY + 2 * HOUR
    finish_task(db, f"reviewer-{pid}", "completed", done)
    touch(db, "t1", done)
    for hours in (3, 4):  # two clean cycles: cleared in time, but not clear for 2d yet
        result = engine.review(T0 + 10 * DAY + hours * HOUR)
        assert result.outcomes == []
    proposal = engine.state.proposal(pid)
    assert (proposal.task_status, proposal.task_ended_at) == ("completed", fmt_ts(done))
    assert proposal.outcome is None
    result = engine.review(T0 + 12 * DAY + 3 * HOUR)
    assert [(o["id"], o["outcome"]) for o in result.outcomes] == [(pid, "fixed")]
    assert engine.state.proposal(pid).outcome is not None
    (audit,) = outcome_audit(db)
    assert audit["actor"] == "reviewer" and audit["to_state"] == "fixed"
    assert f"after task reviewer-{pid} was completed" in audit["reason"]
    # Judged once: later cycles leave it alone.
    assert engine.review(T0 + 12 * DAY + 4 * HOUR).outcomes == []

    report = report_json(tmp_path, config_data(tmp_path / "pipeline.db"))
    entry = rule_entry(report)
    assert (entry["fixed"], entry["not_fixed"], entry["approvals"], entry["proposals"]) == (
        1,
        0,
        1,
        1,
    )
    # Proposed at day 10, its task ended 2 hours later.
    assert entry["median_time_to_fix_seconds"] == 2 * 3600 and entry["median_time_to_fix"] == "2h"
    with router_client(engine.config, db, clock.at, report_api.router) as client:
        api = client.get("/api/report").json()
    assert rule_entry(api)["fixed"] == 1 and api["totals"]["fixed"] == 1
    shown = CliRunner().invoke(
        cli,
        ["--config", str(tmp_path / "config.toml"), "proposals", "show", str(pid), "--json"],
    )
    assert json.loads(shown.output)["outcome"] == "fixed"


def test_completed_task_whose_finding_persists_is_not_fixed(
    db: SQLiteStore, tmp_path: Path, router_client: RouterClient
) -> None:
    clock = Clock(T0)
    engine, pid = approved_and_filed(db, clock)
    finish_task(db, f"reviewer-{pid}", "completed", T0 + 10 * DAY + 2 * HOUR)
    # The subject task stays idle: the finding keeps firing.
    assert engine.review(T0 + 10 * DAY + 3 * HOUR).outcomes == []
    result = engine.review(T0 + 10 * DAY + 4 * HOUR)
    assert [(o["id"], o["outcome"]) for o in result.outcomes] == [(pid, "not-fixed")]
    (audit,) = outcome_audit(db)
    assert audit["to_state"] == "not-fixed" and "fires 2 review cycle(s) after" in audit["reason"]

    entry = rule_entry(report_json(tmp_path, config_data(tmp_path / "pipeline.db")))
    assert (entry["fixed"], entry["not_fixed"], entry["median_time_to_fix"]) == (0, 1, None)
    assert entry["not_fixed_rate"] == 1.0
    with router_client(engine.config, db, clock.at, report_api.router) as client:
        assert rule_entry(client.get("/api/report").json())["not_fixed"] == 1
    listed = CliRunner().invoke(
        cli, ["--config", str(tmp_path / "config.toml"), "proposals", "list", "--json"]
    )
    assert [p["outcome"] for p in json.loads(listed.output)] == ["not-fixed"]
    text = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.toml"), "report"])
    assert text.exit_code == 0, text.output
    header, row = [line.split() for line in text.output.splitlines()[1:3]]
    assert row[0] == "stale-queue" and row[header.index("NOT-FIXED")] == "1"


def test_cancelled_task_is_abandoned_at_once(
    db: SQLiteStore,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    router_client: RouterClient,
) -> None:
    from reviewer.report import print_review

    clock = Clock(T0)
    engine, pid = approved_and_filed(db, clock)
    finish_task(db, f"reviewer-{pid}", "cancelled", T0 + 10 * DAY + HOUR)
    result = engine.review(T0 + 10 * DAY + 2 * HOUR)
    assert [(o["id"], o["outcome"]) for o in result.outcomes] == [(pid, "abandoned")]
    print_review(result)
    assert f"#{pid:<4} abandoned  task reviewer-{pid} was cancelled" in capsys.readouterr().out
    (audit,) = outcome_audit(db)
    assert f"task reviewer-{pid} was cancelled" in audit["reason"]
    entry = rule_entry(report_json(tmp_path, config_data(tmp_path / "pipeline.db")))
    assert entry["abandoned"] == 1 and entry["fixed"] == entry["not_fixed"] == 0
    with router_client(engine.config, db, clock.at, report_api.router) as client:
        assert rule_entry(client.get("/api/report").json())["abandoned"] == 1


def test_fixed_then_the_finding_comes_back_is_regressed(
    db: SQLiteStore, tmp_path: Path, router_client: RouterClient
) -> None:
    clock = Clock(T0)
    engine, pid = approved_and_filed(db, clock)
    done = T0 + 10 * DAY + 2 * HOUR
    finish_task(db, f"reviewer-{pid}", "completed", done)
    touch(db, "t1", done)
    engine.review(T0 + 10 * DAY + 3 * HOUR)
    engine.review(T0 + 10 * DAY + 4 * HOUR)
    assert [o["outcome"] for o in engine.review(T0 + 12 * DAY + 3 * HOUR).outcomes] == ["fixed"]
    # Idle again past the 3-day limit: the finding fires again.
    back = engine.review(T0 + 14 * DAY)
    assert [(o["id"], o["from"], o["outcome"]) for o in back.outcomes] == [
        (pid, "fixed", "regressed")
    ]
    assert [a["to_state"] for a in outcome_audit(db)] == ["fixed", "regressed"]
    entry = rule_entry(report_json(tmp_path, config_data(tmp_path / "pipeline.db")))
    assert (entry["fixed"], entry["regressed"]) == (0, 1)
    # A regression still counts its time to fix.
    assert entry["median_time_to_fix"] == "2h"
    with router_client(engine.config, db, clock.at, report_api.router) as client:
        assert rule_entry(client.get("/api/report").json())["regressed"] == 1


# -- the breaker -----------------------------------------------------------------------


class _ProbeOptions(RuleOptions):
    limit: int = 0


# Subjects the probe rule reports, each with a number; it fires when the number > limit.
FIRING: dict[str, int] = {}


def _probe_check(options: _ProbeOptions, view: Any) -> Iterator[Finding]:
    for subject, size in sorted(FIRING.items()):
        if size > options.limit:
            yield Finding(kind="big", subject=subject, summary=f"{subject} is {size}", evidence={})


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    module = types.SimpleNamespace(
        ID="probe",
        Options=_ProbeOptions,
        DEFAULTS={},
        check=_probe_check,
        TUNING={"option": "limit", "quieter": "higher"},
        __doc__="probe: a test rule.",
    )
    monkeypatch.setitem(rules.REGISTRY, "probe", module)
    FIRING.clear()
    yield FIRING
    FIRING.clear()


def probe_config(**probe_cfg: Any) -> dict[str, Any]:
    only: dict[str, Any] = {r: {"enabled": False} for r in rules.REGISTRY if r != "probe"}
    only["probe"] = probe_cfg
    return {"reviewer": {"breaker_rejections": 3, "breaker_window": "7d"}, "rules": only}


def test_rejections_trip_the_breaker_to_manual_until_a_person_resets_it(
    db: SQLiteStore, probe: dict[str, int]
) -> None:
    clock = Clock(T0)
    cfg = make_config(probe_config(approval="manual"))
    engine = Engine(cfg, db, clock=clock)
    probe.update({"a": 5, "b": 5, "c": 5})
    engine.review(T0)
    for p in engine.state.proposals(state="pending"):
        engine.reject(p.id, by="carol", reason="noise")
    # The rule goes to auto; its rejections are still within the window.
    auto = Engine(make_config(probe_config(approval="auto")), db, clock=clock)
    probe.clear()
    probe["d"] = 5
    result = auto.review(T0 + HOUR)
    (trip,) = db.query("SELECT * FROM reviewer_audit WHERE action = 'rule.breaker_tripped'")
    assert trip["actor"] == "reviewer" and trip["rule"] == "probe"
    assert "3 rejection(s) within 7d" in trip["reason"]
    assert any("breaker tripped" in n for n in result.notes)
    (made,) = [p for p in result.proposals if p["change"] == "created"]
    assert (made["state"], made["approval"]) == ("pending", "manual")
    assert db.query("SELECT COUNT(*) AS n FROM tasks WHERE source = 'reviewer'")[0]["n"] == 0

    app = App(auto.config, db, clock=clock)
    entry = rule_entry(ledger(app, hints=False), "probe")
    assert entry["approval"] == "auto" and entry["effective_approval"] == "manual"
    assert entry["breaker"]["reset"] == "reviewer rules reset-breaker probe"
    assert entry["rejection_reasons"] == [{"reason": "noise", "n": 3}]

    # A person resets it: the next proposal is filed on auto again, and the old
    # rejections no longer count.
    clock.at = T0 + 2 * HOUR
    with db.transaction():
        auto.state.reset_breaker("probe", by="dave", at=fmt_ts(clock.at), reason="tuned it")
    (reset,) = db.query("SELECT * FROM reviewer_audit WHERE action = 'rule.breaker_reset'")
    assert (reset["actor"], reset["reason"]) == ("dave", "tuned it")
    probe["e"] = 5
    again = auto.review(T0 + 3 * HOUR)
    (filed,) = [p for p in again.proposals if p["change"] == "created"]
    assert filed["state"] == "scheduled" and filed["approval"] == "auto"
    assert auto.state.tripped_breakers() == {}


def test_reset_breaker_from_the_command_line(
    db: SQLiteStore, tmp_path: Path, probe: dict[str, int]
) -> None:
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(f'[reviewer]\nstore = "sqlite:///{tmp_path / "pipeline.db"}"\n')
    runner = CliRunner()
    refused = runner.invoke(cli, ["--config", str(cfg_path), "rules", "reset-breaker", "probe"])
    assert refused.exit_code == 1 and "is not tripped" in refused.output
    with db.transaction():
        engine = Engine(make_config(probe_config()), db)
        engine.state.trip_breaker("probe", at=fmt_ts(T0), rejections=3, reason="3 rejections")
    ok = runner.invoke(
        cli,
        [
            "--config",
            str(cfg_path),
            "rules",
            "reset-breaker",
            "probe",
            "--by",
            "erin",
            "--reason",
            "ok",
        ],
    )
    assert ok.exit_code == 0, ok.output
    (reset,) = db.query(
        "SELECT actor, reason FROM reviewer_audit WHERE action = 'rule.breaker_reset'"
    )
    assert reset == {"actor": "erin", "reason": "ok"}


def test_tuning_hint_names_the_option_and_backtests_the_quieter_value(
    db: SQLiteStore, probe: dict[str, int]
) -> None:
    clock = Clock(T0 + DAY)
    engine = Engine(make_config(probe_config(limit=4)), db, clock=clock)
    # Three rejected findings just over the limit, one far over it.
    probe.update({"a": 5, "b": 5, "c": 5, "huge": 50})
    engine.review(T0 + DAY)
    for p in engine.state.proposals(state="pending"):
        if p.subject != "huge":
            engine.reject(p.id, by="carol", reason="too small to matter")
    entry = rule_entry(ledger(App(engine.config, db, clock=clock)), "probe")
    assert entry["rejection_rate"] == 1.0
    hint = entry["hint"]
    assert (hint["option"], hint["direction"], hint["current"], hint["suggested"]) == (
        "limit",
        "higher",
        4,
        6,
    )
    assert "raise limit from 4 to 6 in [rules.probe]" in hint["why"]
    bt = hint["backtest"]
    # Over the last 7 days every step sees all four; with limit 6 only "huge" fires.
    assert (bt["findings_before"], bt["findings_after"]) == (4, 1)
    assert bt["quieted"] == 3 and bt["quieted_unwanted"] == 3
    assert bt["to"] == fmt_ts(T0 + DAY) and bt["command"].startswith("reviewer backtest --from ")
    # A rule with few decisions gets no hint.
    quiet = rule_entry(ledger(App(engine.config, db, clock=clock)), "stale-queue")
    assert quiet["hint"] is None


def test_a_table_of_durations_steps_every_value_the_quieter_way() -> None:
    from reviewer.ledger import step_value, toml_text

    limits = {"high": timedelta(days=3), "low": timedelta(days=30)}
    up = {"high": timedelta(days=4, hours=12), "low": timedelta(days=45)}
    assert step_value(limits, True) == up
    assert step_value(limits, False) == {"high": timedelta(days=2), "low": timedelta(days=20)}
    assert [step_value(v, True) for v in (4, 1, 0.2, True)] == [6, 2, 0.3, None]
    assert toml_text(step_value(limits, True)) == '{ high = "4d12h", low = "45d" }'


def test_reset_breaker_over_the_api_needs_the_token_and_is_audited(
    db: SQLiteStore, probe: dict[str, int]
) -> None:
    from fastapi.testclient import TestClient

    from reviewer.api import create_app

    cfg = make_config({**probe_config(), "reviewer": {"api_token": "s3cret-token"}})
    app = App(cfg, db, clock=Clock(T0))
    with db.transaction():
        app.state.trip_breaker("probe", at=fmt_ts(T0), rejections=5, reason="5 rejections")
    with TestClient(create_app(app)) as client:
        assert client.post("/api/rules/probe/reset-breaker").status_code == 401
        auth = {"Authorization": "Bearer s3cret-token"}
        ok = client.post(
            "/api/rules/probe/reset-breaker", json={"reason": "thresholds raised"}, headers=auth
        )
        assert ok.status_code == 200 and ok.json()["reset_by"] == "api"
        assert client.post("/api/rules/probe/reset-breaker", headers=auth).status_code == 404
        assert client.get("/api/report?hints=false").json()["breakers"] == []
    (reset,) = db.query(
        "SELECT actor, reason FROM reviewer_audit WHERE action = 'rule.breaker_reset'"
    )
    assert reset == {"actor": "api", "reason": "thresholds raised"}
