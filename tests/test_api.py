"""The HTTP API: reads, token-guarded decisions, uploads, the page, /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from reviewer.api import create_app
from reviewer.app import App
from reviewer.cli import cli
from store.timeutil import parse_ts
from tests.support import make_config, task_rows

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, App]]:
    cfg = make_config(
        {
            "reviewer": {
                "store": f"sqlite:///{tmp_path / 'p.db'}",
                "api_token": TOKEN,
            }
        }
    )
    app = App.from_config(cfg)
    app.store.upsert_tasks(
        task_rows(
            [
                {
                    "id": "t1",
                    "title": "Wire <b>metrics</b>",
                    "priority": "high",
                    "created_at": "2026-03-01T00:00:00Z",
                },
                {
                    "id": "t2",
                    "title": "Docs",
                    "priority": "critical",
                    "created_at": "2026-03-01T00:00:00Z",
                },
            ]
        )
    )
    app.engine.review(parse_ts("2026-03-10T00:00:00Z"))
    with TestClient(create_app(app)) as c:
        yield c, app
    app.close()


def test_reads_are_open(client: tuple[TestClient, App]) -> None:
    c, _ = client
    assert c.get("/healthz").json()["status"] == "ok"
    findings = c.get("/api/findings").json()
    assert {f["subject"] for f in findings} == {"t1", "t2"}
    proposals = c.get("/api/proposals?state=pending").json()
    assert len(proposals) == 2 and all(p["state"] == "pending" for p in proposals)
    assert c.get("/api/proposals/1").json()["audit"][0]["action"] == "proposal.created"
    assert c.get("/api/proposals/99").status_code == 404
    assert c.get("/api/runs").json()[0]["findings"] == 2


def test_changes_need_the_token(client: tuple[TestClient, App]) -> None:
    c, app = client
    assert c.post("/api/proposals/1/approve").status_code == 401
    bad = c.post("/api/proposals/1/approve", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    ok = c.post(
        "/api/proposals/1/approve",
        headers={**AUTH, "X-Reviewer-Actor": "ci-bot"},
        json={"reason": "looks right"},
    )
    assert ok.status_code == 200
    assert ok.json()["state"] == "scheduled" and ok.json()["task_id"] == "reviewer-1"
    assert app.store.get_task("reviewer-1") is not None
    trail = c.get("/api/proposals/1").json()["audit"]
    # The legacy token has the admin scope, so it may name whom it acts for; the
    # trail still says which token acted.
    assert ("ci-bot via api", "looks right") in {(a["actor"], a["reason"]) for a in trail}
    again = c.post("/api/proposals/1/approve", headers=AUTH)
    assert again.status_code == 200 and again.json()["task_id"] == "reviewer-1"
    rejected = c.post("/api/proposals/2/reject", headers=AUTH, json={"by": "dana", "reason": "no"})
    assert rejected.json()["state"] == "rejected"
    assert rejected.json()["decided_by"] == "dana via api"
    conflict = c.post("/api/proposals/1/reject", headers=AUTH)
    assert conflict.status_code == 409 and "already scheduled" in conflict.json()["detail"]


def test_no_configured_token_refuses_changes(tmp_path: Path) -> None:
    cfg = make_config({"reviewer": {"store": f"sqlite:///{tmp_path / 'p.db'}"}})
    app = App.from_config(cfg)
    with TestClient(create_app(app)) as c:
        r = c.post("/api/proposals/1/approve", headers=AUTH)
    app.close()
    assert r.status_code == 403 and "no API token configured" in r.json()["detail"]


def test_silences_over_http(client: tuple[TestClient, App]) -> None:
    c, _ = client
    r = c.post(
        "/api/silences",
        headers=AUTH,
        json={
            "rule": "stale-queue",
            "subject": "t*",
            "until": "2099-01-01T00:00:00Z",
            "comment": "freeze week",
        },
    )
    assert r.status_code == 201
    assert [s["subject"] for s in c.get("/api/silences").json()] == ["t*"]
    assert c.post(f"/api/silences/{r.json()['id']}/expire", headers=AUTH).status_code == 200
    assert c.get("/api/silences").json() == []


def test_a_silence_that_already_expired_is_refused_as_on_the_command_line(
    client: tuple[TestClient, App], tmp_path: Path
) -> None:
    c, app = client
    past = {"rule": "stale-queue", "subject": "t*", "until": "2020-01-01T00:00:00Z", "comment": "x"}
    r = c.post("/api/silences", headers=AUTH, json=past)
    assert r.status_code == 422 and "until: must be in the future" in r.text
    assert c.get("/api/silences").json() == []
    # The command line says the same about the same silence (exit 2: bad usage).
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[reviewer]\nstore = "{app.config.reviewer.store}"\n', encoding="utf-8")
    out = CliRunner().invoke(
        cli,
        [
            "--config",
            str(cfg),
            "silence",
            "add",
            "--rule",
            "stale-queue",
            "--subject",
            "t*",
            "--until",
            "2020-01-01T00:00:00Z",
            "--comment",
            "x",
        ],
    )
    assert out.exit_code == 2 and "must be in the future" in out.output


def test_junit_upload(client: tuple[TestClient, App]) -> None:
    c, app = client
    xml = (
        '<testsuite name="s" timestamp="2026-03-09T10:00:00"><testcase classname="a.B" name="t"/>'
        '<testcase classname="a.B" name="u"><failure message="boom"/></testcase></testsuite>'
    )
    r = c.post("/api/test-results?run_id=r1&commit=abc", headers=AUTH, content=xml)
    assert r.status_code == 200 and r.json()["stored"] == 2
    rows = app.store.query("SELECT test_id, outcome FROM test_results ORDER BY test_id")
    assert rows == [
        {"test_id": "a.B::t", "outcome": "passed"},
        {"test_id": "a.B::u", "outcome": "failed"},
    ]
    bad = c.post("/api/test-results?run_id=r2&commit=abc", headers=AUTH, content="<testsuite>")
    assert bad.status_code == 422 and "not well-formed" in bad.json()["errors"][0]


def test_page_lists_pending_proposals_escaped(client: tuple[TestClient, App]) -> None:
    c, _ = client
    html = c.get("/").text
    assert 'id="proposal-1"' in html and 'id="proposal-2"' in html
    assert "Wire &lt;b&gt;metrics&lt;/b&gt;" in html and "<b>metrics</b>" not in html
    assert 'href="/login?next=' in html  # deciding needs a login (tests/test_page.py)


def test_prometheus_metrics(client: tuple[TestClient, App]) -> None:
    c, _ = client
    text = c.get("/metrics").text
    assert 'reviewer_review_runs_total{status="ok"} 1.0' in text
    assert 'reviewer_findings{rule="stale-queue",state="open"} 2.0' in text
    assert 'reviewer_proposals{rule="stale-queue",state="pending"} 2.0' in text
    assert "reviewer_last_run_success 1.0" in text


def test_junit_upload_names_a_suite_timestamp_out_of_range(
    client: tuple[TestClient, App],
) -> None:
    c, _ = client
    xml = (
        '<testsuite name="far" timestamp="9999-12-31T23:00:00-05:00">'
        '<testcase classname="a.B" name="t"/></testsuite>'
    )
    r = c.post("/api/test-results?run_id=r9&commit=abc", headers=AUTH, content=xml)
    assert r.status_code == 200 and r.json()["stored"] == 1
    (warning,) = r.json()["warnings"]
    assert warning.startswith("body: <testsuite name='far'> attribute 'timestamp'")
    assert "9999-12-31T23:00:00-05:00" in warning
    assert "/tmp" not in warning and "upload.xml" not in warning
