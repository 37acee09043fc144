"""Controls: applied with their proposal (or at once on auto), lifted on expiry, after
their finding cleared, or by hand (CLI, API), always audited; the README's runner example
runs against a real store. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

import rules
from reviewer.api import create_app
from reviewer.app import App
from reviewer.cli import cli
from reviewer.engine import Engine
from reviewer.report import print_review
from rules import Finding
from rules.contract import ControlKind, ControlSpec, RuleOptions
from store import Store, open_store
from store.state import ReviewerState
from store.timeutil import fmt_ts, parse_ts, utcnow
from tests.support import make_config, metric_rows, task_rows

T0 = parse_ts("2026-03-10T12:00:00Z")
README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each SQL kind."""
    from tests.pg import fresh_schema_url

    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 's.db'}")
        yield s
        s.close()
        return
    with fresh_schema_url() as url:
        s = open_store(url)
        yield s
        s.close()


class Clock:
    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class _Options(RuleOptions):
    pass


class Breaker:
    """A stand-in rule whose one finding asks to pause executor ex-1 while ``firing``."""

    ID = "breaker"
    Options = _Options
    DEFAULTS: ClassVar[dict[str, Any]] = {"severity": "error"}

    def __init__(self) -> None:
        self.firing = True

    def check(self, options: Any, view: Any) -> Iterator[Finding]:
        if self.firing:
            yield Finding(
                kind="error-rate",
                subject="executor:ex-1",
                summary="Executor ex-1 failed 9 of 10 runs",
                evidence={"runs": 10, "failures": 9},
                remedy="pause",
                control=ControlSpec(kind=ControlKind.pause, target="executor:ex-1"),
            )


@pytest.fixture
def breaker(monkeypatch: pytest.MonkeyPatch) -> Breaker:
    rule = Breaker()
    monkeypatch.setitem(rules.REGISTRY, Breaker.ID, rule)  # type: ignore[arg-type]
    return rule


def engine_for(store: Store, clock: Clock, rule: dict[str, Any] | None = None, **rv: Any) -> Engine:
    only: dict[str, Any] = {r: {"enabled": False} for r in rules.REGISTRY if r != Breaker.ID}
    only[Breaker.ID] = rule or {}
    return Engine(make_config({"reviewer": rv, "rules": only}), store, clock=clock)


def review(engine: Engine, clock: Clock, at: datetime) -> Any:
    clock.at = at
    return engine.review(at)


def audit(store: Store, action: str) -> list[dict[str, Any]]:
    return store.query(
        "SELECT actor, action, proposal_id, reason, details FROM reviewer_audit"
        " WHERE action = :a ORDER BY id",
        {"a": action},
    )


def test_approving_the_proposal_applies_its_control_and_files_the_task(
    any_store: Store, breaker: Breaker
) -> None:
    clock = Clock(T0)
    engine = engine_for(any_store, clock)
    first = review(engine, clock, T0)
    state = ReviewerState(any_store)
    assert first.controls == [] and state.controls(fmt_ts(T0)) == []  # manual: nothing yet
    (proposal,) = state.proposals(state="pending")
    # The person deciding reads what approving will do.
    assert "## What approving does" in proposal.body
    assert "**pause** `executor:ex-1`" in proposal.body

    clock.at = T0 + timedelta(minutes=30)
    done = engine.approve(proposal.id, by="alice", reason="stop the bleeding")
    assert done.state.value == "scheduled" and any_store.get_task(done.task_id or "") is not None
    (c,) = state.controls(fmt_ts(clock.at))
    assert (c.kind.value, c.target, c.created_by, c.proposal_id) == (
        "pause",
        "executor:ex-1",
        "alice",
        proposal.id,
    )
    assert c.created_at == "2026-03-10T12:30:00Z" and c.expires_at == "2026-03-11T12:30:00Z"
    assert c.reason == "Executor ex-1 failed 9 of 10 runs" and c.fingerprint == proposal.fingerprint
    (entry,) = audit(any_store, "control.applied")
    assert entry["actor"] == "alice" and entry["proposal_id"] == proposal.id
    assert "stop the bleeding" in entry["reason"]
    assert json.loads(entry["details"])["control_id"] == c.id
    # Approving twice, and later cycles while it still fires, add no second control.
    engine.approve(proposal.id, by="alice")
    review(engine, clock, T0 + timedelta(hours=1))
    assert len(state.controls(fmt_ts(clock.at), include_lifted=True)) == 1
    assert len(audit(any_store, "control.applied")) == 1


def test_rejecting_applies_nothing(any_store: Store, breaker: Breaker) -> None:
    clock = Clock(T0)
    engine = engine_for(any_store, clock)
    review(engine, clock, T0)
    state = ReviewerState(any_store)
    (proposal,) = state.proposals(state="pending")
    engine.reject(proposal.id, by="bob", reason="expected during the migration")
    review(engine, clock, T0 + timedelta(hours=1))
    assert state.controls(fmt_ts(clock.at), include_lifted=True) == []


def test_auto_approval_applies_the_control_in_the_cycle_that_found_it(
    any_store: Store, breaker: Breaker, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = Clock(T0)
    engine = engine_for(any_store, clock, {"approval": "auto"})
    result = review(engine, clock, T0)
    state = ReviewerState(any_store)
    (c,) = state.controls(fmt_ts(T0))
    assert c.created_by == "reviewer" and c.kind == ControlKind.pause
    assert [(x["change"], x["id"], x["status"]) for x in result.controls] == [
        ("applied", c.id, "active")
    ]
    assert result.public()["controls"] == result.controls
    (entry,) = audit(any_store, "control.applied")
    assert entry["actor"] == "reviewer" and "approval = auto" in entry["reason"]
    print_review(result)
    assert (
        f"1 control change(s):\n  #{c.id:<4} applied    pause executor:ex-1: until {c.expires_at}"
        in capsys.readouterr().out
    )


def test_a_rule_with_control_ttl_0s_files_the_task_only(any_store: Store, breaker: Breaker) -> None:
    clock = Clock(T0)
    engine = engine_for(any_store, clock, {"approval": "auto", "control_ttl": "0s"})
    review(engine, clock, T0)
    state = ReviewerState(any_store)
    assert [p.state.value for p in state.proposals()] == ["scheduled"]
    assert state.controls(fmt_ts(T0), include_lifted=True) == []


def test_a_control_lifts_itself_when_it_expires(any_store: Store, breaker: Breaker) -> None:
    clock = Clock(T0)
    # The rule's own control_ttl wins over [reviewer] control_ttl.
    engine = engine_for(any_store, clock, {"approval": "auto", "control_ttl": "2h"})
    review(engine, clock, T0)
    state = ReviewerState(any_store)
    (c,) = state.controls(fmt_ts(T0))
    assert c.expires_at == "2026-03-10T14:00:00Z"
    # Past its expiry it is inactive for every reader at once, before any cycle records it.
    later = fmt_ts(T0 + timedelta(hours=2, minutes=1))
    assert state.controls(later) == []
    assert state.control(c.id).public(later)["status"] == "expired"

    result = review(engine, clock, T0 + timedelta(hours=3))  # still firing: lifted all the same
    lifted = state.control(c.id)
    assert (lifted.lifted_at, lifted.lifted_by) == ("2026-03-10T15:00:00Z", "reviewer")
    assert lifted.lift_reason is not None and "expired at 2026-03-10T14:00:00Z" in (
        lifted.lift_reason
    )
    assert [x["change"] for x in result.controls] == ["lifted"]
    (entry,) = audit(any_store, "control.lifted")
    assert entry["actor"] == "reviewer" and "expired" in entry["reason"]


def test_a_control_lifts_once_its_finding_has_cleared_for_n_cycles(
    any_store: Store, breaker: Breaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(T0)
    engine = engine_for(
        any_store, clock, {"approval": "auto"}, control_lift_after_cycles=3, resolve_after_cycles=1
    )
    review(engine, clock, T0)
    state = ReviewerState(any_store)
    (c,) = state.controls(fmt_ts(T0))
    at = T0

    def cycle() -> int:
        nonlocal at
        at += timedelta(minutes=15)
        review(engine, clock, at)
        return state.control(c.id).clear_cycles

    breaker.firing = False
    assert [cycle(), cycle()] == [1, 2]
    breaker.firing = True  # fired again: the count starts over
    assert cycle() == 0
    breaker.firing = False
    assert [cycle(), cycle()] == [1, 2]

    def broken(options: Any, view: Any) -> Iterator[Finding]:
        raise RuntimeError("store returned garbage")

    with monkeypatch.context() as m:  # a cycle in which the rule failed does not count
        m.setattr(breaker, "check", broken)
        assert cycle() == 2
    assert state.control(c.id).lifted_at is None
    assert cycle() == 3
    lifted = state.control(c.id)
    assert lifted.lifted_at == fmt_ts(at) and lifted.lifted_by == "reviewer"
    assert lifted.lift_reason == "its finding has not fired for 3 cycles in a row"
    assert state.controls(fmt_ts(at)) == []
    (entry,) = audit(any_store, "control.lifted")
    assert entry["reason"] == lifted.lift_reason


def test_control_spec_refuses_a_target_its_kind_cannot_name() -> None:
    with pytest.raises(ValueError, match="a hold control targets task_type:NAME"):
        ControlSpec(kind=ControlKind.hold, target="executor:ex-1")
    with pytest.raises(ValueError, match="a throttle needs tasks_per_hour"):
        ControlSpec(kind=ControlKind.throttle, target="model:m")
    with pytest.raises(ValueError, match="only a throttle has limits"):
        ControlSpec(kind=ControlKind.pause, target="executor:e", tasks_per_hour=3)
    with pytest.raises(ValueError, match="targets"):
        ControlSpec(kind=ControlKind.quarantine, target="test:")
    assert ControlSpec(kind=ControlKind.throttle, target="all", usd_per_day=50).usd_per_day == 50


# -- by hand: the CLI ------------------------------------------------------------------------
def _breaker_metrics(now: datetime) -> list[dict[str, Any]]:
    """Executor ex-a failing 6 of 10 runs in the last hours (stuck-phases' error-rate)."""
    out = []
    for i in range(10):
        out.append(
            {
                "task_id": f"a{i}",
                "executor": "ex-a",
                "status": "failed" if i in (0, 1, 3, 5, 7, 8) else "completed",
                "duration_seconds": 60.0,
                "error": "401 Unauthorized",
                "created_at": fmt_ts(now - timedelta(hours=5) + timedelta(minutes=30 * i)),
            }
        )
    for i in range(15):
        out.append(
            {
                "task_id": f"b{i}",
                "executor": "ex-b",
                "status": "failed" if i % 5 == 4 else "completed",
                "duration_seconds": 60.0,
                "created_at": fmt_ts(now - timedelta(hours=5) + timedelta(minutes=20 * i)),
            }
        )
    return out


def run(cfg: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(cfg), *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store of each SQL kind."""
    from tests.pg import fresh_schema_url

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pipeline.db'}"
        return
    with fresh_schema_url() as url:
        yield url


def test_cli_controls_list_json_all_and_lift(tmp_path: Path, store_url: str) -> None:
    """A real rule end to end: the error-rate breaker on auto pauses ex-a; lifted by hand."""
    cfg = tmp_path / "config.toml"
    others = "".join(
        f"[rules.{r}]\nenabled = false\n" for r in rules.REGISTRY if r != "stuck-phases"
    )
    cfg.write_text(
        f'[reviewer]\nstore = "{store_url}"\n[rules.stuck-phases]\napproval = "auto"\n{others}'
    )
    store = open_store(store_url)
    store.upsert_metrics(metric_rows(_breaker_metrics(utcnow())))
    store.close()
    code, out, err = run(cfg, "review", "--once", "--json")
    assert code == 0, err
    (applied,) = json.loads(out)["controls"]
    assert (applied["kind"], applied["target"], applied["change"]) == (
        "pause",
        "executor:ex-a",
        "applied",
    )

    code, out, _ = run(cfg, "controls", "list")
    assert code == 0 and "pause" in out and "executor:ex-a" in out and "active" in out
    code, out, _ = run(cfg, "controls", "list", "--json")
    (listed,) = json.loads(out)
    assert listed["id"] == applied["id"] and listed["status"] == "active"
    assert listed["rule"] == "stuck-phases" and listed["created_by"] == "reviewer"

    code, _, err = run(cfg, "controls", "lift", str(listed["id"]), "--reason", "  ")
    assert code == 2 and "--reason" in err
    code, out, err = run(
        cfg,
        "controls",
        "lift",
        str(listed["id"]),
        "--reason",
        "credentials rotated",
        "--by",
        "carol",
    )
    assert code == 0, err
    assert out.strip() == f"control {listed['id']} lifted: pause executor:ex-a"
    code, out, _ = run(cfg, "controls", "list", "--json")
    assert json.loads(out) == []
    code, out, _ = run(cfg, "controls", "list")
    assert out.strip() == "no controls in force"
    code, out, _ = run(cfg, "controls", "list", "--all", "--json")
    (old,) = json.loads(out)
    assert (old["status"], old["lifted_by"], old["lift_reason"]) == (
        "lifted",
        "carol",
        "credentials rotated",
    )
    code, out, _ = run(cfg, "controls", "list", "--all")
    assert "carol" in out and "lifted" in out
    # Lifting again changes nothing and says so; an unknown id is a message, exit 1.
    code, out, _ = run(cfg, "controls", "lift", str(listed["id"]), "--reason", "again")
    assert code == 0 and "already lifted" in out and "by carol" in out
    code, _, err = run(cfg, "controls", "lift", "999", "--reason", "x")
    assert code == 1 and "no control with id 999" in err and "Traceback" not in err

    store = open_store(store_url)
    try:
        (entry,) = audit(store, "control.lifted")
        assert entry["actor"] == "carol" and entry["reason"] == "credentials rotated"
        # The proposal's trail shows the control it applied.
        trail = ReviewerState(store).audit_log(proposal_id=listed["proposal_id"])
        assert "control.applied" in [e["action"] for e in trail]
    finally:
        store.close()


# -- by hand: the API -------------------------------------------------------------------------
def test_api_controls_shape_filters_and_lift(any_store: Store, breaker: Breaker) -> None:
    """Through the whole app (``ROUTERS``, its error handlers), not the router alone."""
    clock = Clock(T0)
    engine = engine_for(any_store, clock, {"approval": "auto"})
    review(engine, clock, T0)
    cfg = make_config(
        {"reviewer": {"api_token": "s3cret"}, "rules": {Breaker.ID: {"approval": "auto"}}}
    )
    now = T0 + timedelta(minutes=5)
    with TestClient(create_app(App(cfg, any_store, clock=lambda: now))) as client:
        (c,) = client.get("/api/controls").json()
        assert set(c) == {
            "id",
            "kind",
            "target",
            "tasks_per_hour",
            "usd_per_day",
            "reason",
            "fingerprint",
            "rule",
            "proposal_id",
            "created_by",
            "created_at",
            "expires_at",
            "lifted_at",
            "lifted_by",
            "lift_reason",
            "clear_cycles",
            "status",
        }
        assert (c["kind"], c["target"], c["status"], c["rule"]) == (
            "pause",
            "executor:ex-1",
            "active",
            "breaker",
        )
        assert client.get(f"/api/controls/{c['id']}").json() == c
        metrics = client.get("/metrics").text
        assert 'reviewer_controls_active{kind="pause"} 1.0' in metrics
        assert 'reviewer_controls_active{kind="hold"} 0.0' in metrics
        assert client.get("/api/controls/999").status_code == 404

        path = f"/api/controls/{c['id']}/lift"
        assert client.post(path, json={"reason": "fixed"}).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.post(path, json={"reason": "fixed"}, headers=wrong).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        assert client.post(path, json={"reason": "  "}, headers=auth).status_code == 422
        assert client.post(path, json={}, headers=auth).status_code == 422
        r = client.post(path, json={"reason": "creds rotated"}, headers=auth)
        assert r.status_code == 200
        body = r.json()
        assert (body["status"], body["lifted_by"], body["lift_reason"]) == (
            "lifted",
            "api",
            "creds rotated",
        )
        assert body["lifted_at"] == fmt_ts(now)
        again = client.post(path, json={"reason": "twice"}, headers=auth)
        assert again.status_code == 200 and again.json()["lift_reason"] == "creds rotated"

        metrics = client.get("/metrics").text
        assert 'reviewer_controls_active{kind="pause"} 0.0' in metrics
        assert client.get("/api/controls").json() == []
        (hist,) = client.get("/api/controls", params={"all": "true"}).json()
        assert hist["status"] == "lifted"
    (entry,) = audit(any_store, "control.lifted")
    assert entry["actor"] == "api" and entry["reason"] == "creds rotated"


# -- the README's runner contract ------------------------------------------------------------
def _readme_section(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _runner_example() -> dict[str, Any]:
    section = _readme_section("## Controls: what the pipeline obeys")
    (code,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md (runner example)", "exec"), namespace)
    return namespace


def test_the_readme_documents_every_column_of_the_controls_table(tmp_path: Path) -> None:
    section = _readme_section("## Controls: what the pipeline obeys")
    documented = re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE)
    conn = sqlite3.connect(tmp_path / "x.db")
    open_store(f"sqlite:///{tmp_path / 'x.db'}").close()
    columns = [r[1] for r in conn.execute("PRAGMA table_info(controls)")]
    conn.close()
    # The kinds table's first column holds kinds, the columns table the columns.
    assert [c for c in documented if c in columns] == columns


def test_the_readme_runner_example_obeys_every_kind_of_control(tmp_path: Path) -> None:
    ex = _runner_example()
    now = T0
    path = tmp_path / "pipeline.db"
    store = open_store(f"sqlite:///{path}")
    started = [
        # Two impl tasks of model m-busy started within the hour; one of yesterday's.
        {
            "id": f"s{i}",
            "title": "x",
            "model": "m-busy",
            "task_type": "impl",
            "status": "running",
            "created_at": fmt_ts(now - timedelta(hours=h)),
            "started_at": fmt_ts(now - timedelta(hours=h)),
        }
        for i, h in enumerate((0.2, 0.5, 30))
    ]
    store.upsert_tasks(task_rows(started))
    store.upsert_metrics(
        metric_rows(
            [
                {
                    "task_id": "c1",
                    "model": "m-cost",
                    "status": "completed",
                    "cost_usd": 30.0,
                    "duration_seconds": 60.0,
                    "created_at": fmt_ts(now - timedelta(hours=2)),
                },
                {
                    "task_id": "c0",
                    "model": "m-cost",
                    "status": "completed",
                    "cost_usd": 500.0,
                    "duration_seconds": 60.0,
                    "created_at": fmt_ts(now - timedelta(hours=20)),
                },  # yesterday: not counted
            ]
        )
    )
    state = ReviewerState(store)
    at, until = fmt_ts(now - timedelta(hours=1)), fmt_ts(now + timedelta(hours=1))
    specs = [
        ControlSpec(kind=ControlKind.pause, target="executor:ex-bad"),
        ControlSpec(kind=ControlKind.hold, target="task_type:deploy"),
        ControlSpec(kind=ControlKind.throttle, target="model:m-busy", tasks_per_hour=2),
        ControlSpec(kind=ControlKind.throttle, target="model:m-cost", usd_per_day=25.0),
        ControlSpec(kind=ControlKind.throttle, target="model:m-ok", tasks_per_hour=2),
        ControlSpec(kind=ControlKind.quarantine, target="test:api.tests::test_login"),
    ]
    with store.transaction():
        ids = [
            state.apply_control(s, reason="t", by="t", at=at, expires_at=until)[0].id for s in specs
        ]
        # Lifted or expired controls are not obeyed.
        gone = state.apply_control(
            ControlSpec(kind=ControlKind.pause, target="executor:ex-lifted"),
            reason="t",
            by="t",
            at=at,
            expires_at=until,
        )[0]
        state.lift_control(gone.id, by="t", at=at, reason="done")
        state.apply_control(
            ControlSpec(kind=ControlKind.hold, target="task_type:old"),
            reason="t",
            by="t",
            at=at,
            expires_at=fmt_ts(now - timedelta(minutes=1)),
        )
    store.close()

    db = sqlite3.connect(path)
    try:

        def may(**task: str) -> bool:
            base = {"executor": "ex-1", "model": "m-1", "task_type": "impl"}
            return bool(ex["may_start"](db, {**base, **task}, now))

        assert may() is True
        assert may(executor="ex-bad") is False  # paused
        assert may(task_type="deploy") is False  # held
        assert may(model="m-busy") is False  # 2 started within the hour, limit 2
        assert may(model="m-cost") is False  # $30 today, limit $25
        assert may(model="m-ok") is True  # throttled, under its limit
        assert may(executor="ex-lifted") is True and may(task_type="old") is True
        assert ex["quarantined_tests"](db, now) == {"api.tests::test_login"}
        # Once the controls expire, everything may start again.
        later = now + timedelta(hours=2)
        assert ex["may_start"](db, {"executor": "ex-bad", "model": "m-busy"}, later) is True
        assert ex["quarantined_tests"](db, later) == set()
    finally:
        db.close()
    assert len(ids) == len(specs)


def test_the_readme_runner_example_reads_what_the_engine_applied(
    tmp_path: Path, breaker: Breaker
) -> None:
    """No hand-made rows: the control a real approval wrote is the one the runner obeys."""
    ex = _runner_example()
    path = tmp_path / "pipeline.db"
    store = open_store(f"sqlite:///{path}")
    clock = Clock(T0)
    engine = engine_for(store, clock)
    review(engine, clock, T0)
    (proposal,) = ReviewerState(store).proposals(state="pending")
    db = sqlite3.connect(path)
    try:
        task = {"executor": "ex-1", "model": "m", "task_type": "impl"}
        assert ex["may_start"](db, task, T0) is True
        engine.approve(proposal.id, by="alice")
        assert ex["may_start"](db, task, T0) is False
        assert ex["may_start"](db, {**task, "executor": "ex-2"}, T0) is True
    finally:
        db.close()
        store.close()


def test_a_finding_carries_its_control_in_review_json(any_store: Store, breaker: Breaker) -> None:
    clock = Clock(T0)
    result = review(engine_for(any_store, clock), clock, T0)
    (finding,) = result.public()["findings"]
    assert finding["control"] == {
        "kind": "pause",
        "target": "executor:ex-1",
        "tasks_per_hour": None,
        "usd_per_day": None,
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"reviewer": {"control_ttl": "0s"}},
            "[reviewer] option 'control_ttl': must be more than 0s",
        ),
        (
            {"reviewer": {"control_lift_after_cycles": 0}},
            "[reviewer] option 'control_lift_after_cycles'",
        ),
        (
            {"rules": {"flaky-tests": {"control_ttl": "soon"}}},
            "[rules.flaky-tests] option 'control_ttl': 'soon' is not a duration",
        ),
    ],
)
def test_bad_control_settings_are_named(data: dict[str, Any], message: str) -> None:
    from reviewer.config import ConfigError

    with pytest.raises(ConfigError) as err:
        make_config(data)
    assert message in str(err.value)


def test_control_ttl_per_rule_falls_back_to_the_reviewer_default() -> None:
    from reviewer.controls import control_ttl

    cfg = make_config(
        {"reviewer": {"control_ttl": "6h"}, "rules": {"flaky-tests": {"control_ttl": "7d"}}}
    )
    assert control_ttl(cfg, "flaky-tests") == timedelta(days=7)
    assert control_ttl(cfg, "stuck-phases") == timedelta(hours=6)
    assert control_ttl(cfg, "no-such-rule") == timedelta(hours=6)


def test_rules_show_prints_the_control_ttl_in_effect(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[reviewer]\ncontrol_ttl = "12h"\n[rules.flaky-tests]\ncontrol_ttl = "7d"\n')
    code, out, _ = run(cfg, "rules", "show", "flaky-tests")
    assert code == 0 and '  control_ttl = "7d"\n' in out
    code, out, _ = run(cfg, "rules", "show", "stuck-phases")
    assert code == 0 and '  control_ttl = "12h"\n' in out
