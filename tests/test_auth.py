"""Who did it: named, scoped tokens, the read guard, the audit trail, start warnings."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reviewer.api import create_app
from reviewer.api.auth import Principal, principal_for_token
from reviewer.app import App
from reviewer.config import ConfigError
from reviewer.daemon import start_warnings
from store.secrets import redact
from store.timeutil import parse_ts
from tests.support import make_config, task_rows

READER = "reader-token-000000001"
DESK = "desk-token-0000000002"
CI = "ci-token-000000000003"
OPS = "ops-token-00000000004"
METRIC = {
    "task_id": "t1",
    "task_type": "impl",
    "model": "m",
    "executor": "e",
    "duration_seconds": 12,
    "status": "completed",
    "created_at": "2026-03-09T00:00:00Z",
}
SILENCE = {"rule": "stale-queue", "subject": "x", "until": "2999-01-01T00:00:00Z", "comment": "c"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def open_app(tmp_path: Path, **reviewer: Any) -> App:
    cfg = make_config({"reviewer": {"store": f"sqlite:///{tmp_path / 'p.db'}", **reviewer}})
    app = App.from_config(cfg)
    app.store.upsert_tasks(
        task_rows(
            [
                {"id": "t1", "title": "One", "priority": "high", "created_at": "2026-03-01"},
                {"id": "t2", "title": "Two", "priority": "critical", "created_at": "2026-03-01"},
            ]
        )
    )
    app.engine.review(parse_ts("2026-03-10T00:00:00Z"))
    return app


TOKENS = {
    "reader": {"token": READER, "scopes": ["read"]},
    "desk": {"token": DESK, "scopes": ["approve"]},
    "ci": {"token": CI, "scopes": ["ingest"]},
    "ops": {"token": OPS, "scopes": ["admin"]},
}


@pytest.fixture
def scoped(tmp_path: Path) -> Iterator[tuple[TestClient, App]]:
    app = open_app(tmp_path, tokens=TOKENS)
    with TestClient(create_app(app)) as c:
        yield c, app
    app.close()


def test_each_route_needs_its_scope(scoped: tuple[TestClient, App]) -> None:
    c, _ = scoped
    # approve: the desk (approve) and ops (admin) tokens may; reader and ci may not.
    for token, code in ((READER, 403), (CI, 403), (DESK, 200)):
        r = c.post("/api/proposals/1/approve", headers=bearer(token))
        assert r.status_code == code, (token, r.text)
    assert "'approve' scope" in c.post("/api/proposals/2/reject", headers=bearer(CI)).text
    for token, code in ((READER, 403), (CI, 403), (DESK, 201)):
        assert c.post("/api/silences", json=SILENCE, headers=bearer(token)).status_code == code
    # ingest: only ci and ops.
    for token, code in ((READER, 403), (DESK, 403), (CI, 201), (OPS, 201)):
        r = c.post("/api/agent/metrics", json=METRIC, headers=bearer(token))
        assert r.status_code == code, (token, r.text)
    xml = '<testsuite name="s"><testcase classname="a.B" name="t"/></testsuite>'
    for token, code in ((DESK, 403), (CI, 200)):
        r = c.post(
            "/api/test-results?run_id=r1&commit=abc",
            content=xml,
            headers={**bearer(token), "Content-Type": "application/xml"},
        )
        assert r.status_code == code, r.text
    # defining goals is an admin thing.
    goal = {"id": "g1", "title": "Ship"}
    assert c.post("/api/goals", json=goal, headers=bearer(DESK)).status_code == 403
    assert c.post("/api/goals", json=goal, headers=bearer(OPS)).status_code == 201
    defined = c.get("/api/audit?action=goal").json()
    assert [(e["actor"], e["action"], e["subject"]) for e in defined] == [
        ("ops", "goal.defined", "goal:g1")
    ]
    assert c.post("/api/goals", json=goal, headers=bearer("nope")).status_code == 401


def test_the_audit_names_the_token_and_only_admin_names_someone_else(
    scoped: tuple[TestClient, App],
) -> None:
    c, app = scoped
    r = c.post("/api/proposals/1/approve", headers=bearer(DESK), json={"reason": "yes"})
    assert r.json()["decided_by"] == "desk"
    spoof = c.post("/api/proposals/2/reject", headers=bearer(DESK), json={"by": "the-ceo"})
    assert spoof.status_code == 403 and "admin" in spoof.json()["detail"]
    spoof = c.post(
        "/api/proposals/2/reject", headers={**bearer(DESK), "X-Reviewer-Actor": "the-ceo"}
    )
    assert spoof.status_code == 403
    assert app.state.proposal(2).state.value == "pending"  # the refused calls changed nothing
    ok = c.post("/api/proposals/2/reject", headers=bearer(OPS), json={"by": "dana"})
    assert ok.json()["decided_by"] == "dana via ops"
    actors = {e["actor"] for e in c.get("/api/audit").json()}
    assert {"desk", "dana via ops", "reviewer"} <= actors and "the-ceo" not in actors


def test_tokens_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVIEWER_TOKEN_DESK", "desk-from-env-00000000")  # wins over config
    monkeypatch.setenv("PAGER_SECRET", "pager-token-0000000000")
    monkeypatch.setenv("REVIEWER_TOKEN_NIGHT_BOT", "night-bot-token-000000")
    monkeypatch.setenv("REVIEWER_TOKEN_NIGHT_BOT_SCOPES", "approve, ingest")
    monkeypatch.setenv("REVIEWER_TOKEN_PEEK", "peek-token-00000000000")  # no scopes: read
    app = open_app(
        tmp_path,
        tokens={
            "desk": {"token": DESK, "scopes": ["approve"]},
            "pager": {"token_env": "PAGER_SECRET", "scopes": ["approve"]},
            "later": {"scopes": ["admin"]},  # no value anywhere: not usable
        },
    )
    found = {t.name: t.scopes for t in app.config.api_tokens()}
    assert found == {
        "desk": {"approve"},
        "pager": {"approve"},
        "night-bot": {"approve", "ingest"},
        "peek": {"read"},
    }
    assert principal_for_token(app, DESK) is None
    assert principal_for_token(app, "desk-from-env-00000000") == Principal(
        "desk", frozenset({"approve"})
    )
    assert principal_for_token(app, "pager-token-0000000000").name == "pager"  # type: ignore[union-attr]
    with TestClient(create_app(app)) as c:
        r = c.post("/api/proposals/1/approve", headers=bearer("night-bot-token-000000"))
        assert r.json()["decided_by"] == "night-bot"
        r = c.post("/api/proposals/2/approve", headers=bearer("peek-token-00000000000"))
        assert r.status_code == 403
    warnings = start_warnings(app.config, "127.0.0.1")
    assert warnings == [
        "token 'later' has no value ($REVIEWER_TOKEN_LATER is not set): it cannot be used"
    ]
    app.close()
    # Token values never reach output.
    text = "desk-from-env-00000000 night-bot-token-000000 pager-token-0000000000"
    assert redact(text) == "*** *** ***"


def test_legacy_api_token_is_the_token_api_with_every_scope(tmp_path: Path) -> None:
    app = open_app(tmp_path, api_token="legacy-token")
    p = principal_for_token(app, "legacy-token")
    assert p is not None and p.name == "api"
    assert all(p.can(s) for s in ("read", "ingest", "approve", "admin"))
    assert principal_for_token(app, "legacy-tokeN") is None
    assert principal_for_token(app, "") is None
    app.close()


def test_every_token_is_compared_in_constant_time(
    scoped: tuple[TestClient, App], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, app = scoped
    calls: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr("reviewer.api.auth.hmac.compare_digest", counting)
    assert principal_for_token(app, READER).name == "reader"  # type: ignore[union-attr]
    # Every token is compared, even after the match, so timing says nothing.
    assert len(calls) == len(TOKENS)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ({"x": {"token": "short", "scopes": ["read"]}}, "at least 16 characters"),
        ({"x": {"token": READER, "scopes": ["root"]}}, "tokens.x.scopes.0"),
        ({"x": {"token": READER, "scopes": []}}, "tokens.x.scopes"),
        ({"x": {"token": READER, "token_env": "X", "scopes": ["read"]}}, "not both"),
        ({"bad name": {"token": READER, "scopes": ["read"]}}, "a token name is"),
        (
            {
                "a": {"token": READER, "scopes": ["read"]},
                "b": {"token": READER, "scopes": ["read"]},
            },
            "have the same value",
        ),
    ],
)
def test_bad_token_config_is_refused(tokens: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_config({"reviewer": {"tokens": tokens}})
    assert message in str(err.value)
    assert READER not in str(err.value)


def test_env_token_with_an_unknown_scope_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVIEWER_TOKEN_BOT", "bot-token-00000000000")
    monkeypatch.setenv("REVIEWER_TOKEN_BOT_SCOPES", "approve,sudo")
    with pytest.raises(ConfigError, match="unknown scope 'sudo'; known scopes: read, ingest"):
        make_config({})


def test_reads_can_require_the_read_scope(tmp_path: Path) -> None:
    app = open_app(tmp_path, tokens=TOKENS, reads_require_token=True)
    with TestClient(create_app(app)) as c:
        for path in ("/api/findings", "/api/proposals", "/api/audit", "/api/goals"):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers=bearer("wrong")).status_code == 401
            for token in (READER, CI, DESK, OPS):  # every scope holds read
                assert c.get(path, headers=bearer(token)).status_code == 200, (path, token)
        assert c.get("/healthz").status_code == 200  # liveness probes stay open
    app.close()
    (tmp_path / "open").mkdir()
    app = open_app(tmp_path / "open", tokens=TOKENS)
    with TestClient(create_app(app)) as c:
        assert c.get("/api/findings").status_code == 200  # open by default
    app.close()


def test_no_token_refuses_changes_and_warns_at_start(tmp_path: Path) -> None:
    app = open_app(tmp_path)
    with TestClient(create_app(app)) as c:
        r = c.post("/api/silences", json=SILENCE, headers=bearer(OPS))
    assert r.status_code == 403 and "no API token configured" in r.json()["detail"]
    local = start_warnings(app.config, "127.0.0.1")
    assert len(local) == 1 and "no API token is configured" in local[0]
    wide = start_warnings(app.config, "0.0.0.0")
    assert len(wide) == 2 and "reads are open" in wide[1] and "reads_require_token" in wide[1]
    app.close()
    guarded = make_config({"reviewer": {"tokens": TOKENS, "reads_require_token": True}})
    assert start_warnings(guarded, "0.0.0.0") == []
    assert start_warnings(make_config({"reviewer": {"tokens": TOKENS}}), "::1") == []
    assert (
        "beyond this machine"
        in start_warnings(make_config({"reviewer": {"tokens": TOKENS}}), "reviewer.example")[0]
    )


def test_audit_api_filters_and_refuses_bad_values(scoped: tuple[TestClient, App]) -> None:
    c, _ = scoped
    c.post("/api/proposals/1/approve", headers=bearer(DESK), json={"reason": "real bug"})
    c.post("/api/proposals/2/reject", headers=bearer(OPS), json={"reason": "noise"})
    c.post("/api/silences", json=SILENCE, headers=bearer(DESK))
    entries = c.get("/api/audit").json()
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    first = entries[-1]
    assert set(first) == {
        "id",
        "at",
        "actor",
        "action",
        "proposal_id",
        "rule",
        "subject",
        "from_state",
        "to_state",
        "reason",
        "details",
    }
    desk = c.get("/api/audit?actor=desk").json()
    assert {e["action"] for e in desk} == {
        "proposal.approved",
        "proposal.scheduled",
        "silence.added",
    }
    proposal_actions = c.get("/api/audit?action=proposal").json()
    assert all(e["action"].startswith("proposal.") for e in proposal_actions)
    assert len(proposal_actions) == sum(e["action"].startswith("proposal.") for e in entries) == 5
    rejected = c.get("/api/audit?action=proposal.rejected").json()
    assert [(e["actor"], e["reason"], e["to_state"]) for e in rejected] == [
        ("ops", "noise", "rejected")
    ]
    assert c.get("/api/audit?action=proposal.rej").json() == []  # a prefix is a whole word
    assert c.get("/api/audit?limit=2").json() == entries[:2]
    assert c.get("/api/audit?since=2999-01-01T00:00:00Z").json() == []
    assert len(c.get("/api/audit?since=2000-01-01").json()) == len(entries)
    assert c.get("/api/audit?rule=stale-queue").json()
    assert all(e["rule"] == "stale-queue" for e in c.get("/api/audit?rule=stale-queue").json())
    for bad, word in (
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("limit=99999", "limit"),
        ("action=DROP%20TABLE", "action"),
        ("limit=x", "limit"),
    ):
        r = c.get(f"/api/audit?{bad}")
        assert r.status_code == 422 and word in json.dumps(r.json()), (bad, r.text)


def test_require_token_is_an_admin_guard_for_older_routes(tmp_path: Path) -> None:
    from fastapi import Depends, FastAPI

    from reviewer.api.deps import require_token

    app = open_app(tmp_path, tokens=TOKENS)
    web = FastAPI()
    web.state.reviewer = app

    @web.post("/x")
    def x(actor: str = Depends(require_token)) -> dict[str, str]:
        return {"actor": actor}

    with TestClient(web) as c:
        assert c.post("/x", headers=bearer(DESK)).status_code == 403
        assert c.post("/x", headers=bearer(OPS)).json() == {"actor": "ops"}
        named = c.post("/x", headers={**bearer(OPS), "X-Reviewer-Actor": "dana"})
        assert named.json() == {"actor": "dana via ops"}
    app.close()
