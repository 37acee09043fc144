"""The review page without a browser: login, CSRF, escaping, order, filters, bulk, silences."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reviewer.api import create_app
from reviewer.app import App
from store import Severity
from store.models import Approval
from store.timeutil import parse_ts
from tests.support import make_config, metric_rows, task_rows

TOKEN = "page-s3cret"
HOSTILE = "<script>alert('x')</script> <img src=x onerror=alert(1)>"


def _app(store_url: str) -> App:
    cfg = make_config(
        {
            "reviewer": {"store": store_url, "api_token": TOKEN},
            "goals": {"ship": {"title": "Ship <b>it</b>", "label": "ship"}},
        }
    )
    app = App.from_config(cfg)
    app.store.upsert_tasks(
        task_rows(
            [
                {
                    "id": "t1",
                    "title": HOSTILE,
                    "description": "**bold** " + HOSTILE,
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
    app.store.upsert_metrics(
        metric_rows(
            {
                "task_id": f"m{i}",
                "task_type": "code",
                "model": "opus" if i % 2 else "haiku",
                "duration_seconds": 10 + i,
                "status": "completed" if i % 3 else "failed",
                "cost_usd": 0.5,
                "created_at": f"2026-03-0{1 + i % 5}T10:00:00Z",
            }
            for i in range(20)
        )
    )
    app.engine.review(parse_ts("2026-03-10T00:00:00Z"))
    return app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, App]]:
    app = _app(f"sqlite:///{tmp_path / 'p.db'}")
    with TestClient(create_app(app)) as c:
        yield c, app
    app.close()


def _hidden(html: str, name: str = "csrf") -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden {name} field"
    return found.group(1)


def login(c: TestClient, token: str = TOKEN) -> str:
    """Log in through the form; the session's CSRF token."""
    form = c.get("/login")
    r = c.post(
        "/login",
        data={"csrf": _hidden(form.text), "next": "/", "token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return _hidden(c.get("/").text)


def _ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<article id="proposal-(\d+)"', html)]


def test_hostile_text_is_escaped_everywhere(client: tuple[TestClient, App]) -> None:
    c, app = client
    login(c)
    with app.store.transaction():
        app.state.add_silence(
            rule="stale-queue",
            subject=HOSTILE,
            until="2999-01-01T00:00:00Z",
            by=HOSTILE,
            comment=HOSTILE,
            at="2026-03-10T00:00:00Z",
        )
    for path in ("/", "/findings", "/runs", "/silences", "/pipeline", "/audit"):
        html = c.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
    html = c.get("/").text
    assert "&lt;script&gt;alert(" in html  # the title and the rendered task show it as text
    assert "<h2>What was seen</h2>" in html  # the task's Markdown is rendered
    assert "<b>it</b>" not in c.get("/pipeline").text


def test_csp_forbids_inline_script_and_style(client: tuple[TestClient, App]) -> None:
    c, _ = client
    csp = c.get("/").headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "script-src 'self'" in csp
    html = c.get("/").text
    assert "<script>" not in html and "<style>" not in html and " style=" not in html
    assert c.get("/page.js").headers["content-type"].startswith("text/javascript")
    assert "flex-wrap" in c.get("/page.css").text


def test_login_sets_a_session_cookie_not_the_token(client: tuple[TestClient, App]) -> None:
    c, _ = client
    form = c.get("/login")
    assert "httponly" in form.headers["set-cookie"].lower()
    bad = c.post("/login", data={"csrf": _hidden(form.text), "token": "wrong"})
    assert bad.status_code == 401 and "not known" in bad.text
    form = c.get("/login")
    r = c.post(
        "/login",
        data={"csrf": _hidden(form.text), "next": "//evil.example/", "token": TOKEN},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "reviewer_session=" in cookie and TOKEN not in cookie
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    page = c.get("/").text
    assert "Logged in as api" in page and 'id="logout"' in page
    assert TOKEN not in page


def test_redirects_stay_on_this_server() -> None:
    from reviewer.api.page import safe_next

    assert safe_next("/?state=pending#proposal-2") == "/?state=pending#proposal-2"
    for hostile in ("//evil.example", "/\t/evil.example", "/\\evil.example", "https://x", ""):
        assert safe_next(hostile) == "/", hostile


def test_login_needs_its_form_token(client: tuple[TestClient, App]) -> None:
    c, _ = client
    r = c.post("/login", data={"csrf": "forged", "token": TOKEN})
    assert r.status_code == 403
    assert "reviewer_session" not in c.cookies


def test_logout_ends_the_session(client: tuple[TestClient, App]) -> None:
    c, app = client
    csrf = login(c)
    assert c.post("/logout", data={"csrf": "wrong"}).status_code == 403
    r = c.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert 'id="login-link"' in c.get("/").text
    r = c.post("/proposals/1/approve", data={"csrf": csrf, "reason": "x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/"
    assert app.state.proposal(1).state.value == "pending"


def test_csrf_is_checked_on_every_form(client: tuple[TestClient, App]) -> None:
    c, app = client
    csrf = login(c)
    for path, data in (
        ("/proposals/1/approve", {"reason": "x"}),
        ("/proposals/1/reject", {"reason": "x"}),
        ("/proposals/bulk", {"action": "approve", "ids": "1"}),
        (
            "/silences",
            {"rule": "stale-queue", "subject": "x", "until": "2999-01-01T00:00", "comment": "c"},
        ),
        ("/silences/1/expire", {}),
    ):
        assert c.post(path, data=data).status_code == 403, path
        assert c.post(path, data={**data, "csrf": csrf[:-1] + "A"}).status_code == 403, path
    assert app.state.proposal(1).state.value == "pending"
    assert app.state.silences(include_expired=True) == []
    # Not a form at all (what a cross-site JSON fetch would send) is refused too.
    r = c.post("/proposals/1/approve", json={"csrf": csrf})
    assert r.status_code == 415


def test_approve_and_reject_on_the_page_are_audited_by_name(
    client: tuple[TestClient, App],
) -> None:
    c, app = client
    csrf = login(c)
    r = c.post("/proposals/1/approve", data={"csrf": csrf, "reason": "worth it", "next": "/"})
    assert "#1 scheduled as reviewer-1" in r.text
    assert app.store.get_task("reviewer-1") is not None
    r = c.post("/proposals/2/reject", data={"csrf": csrf, "reason": ""})
    assert "a rejection needs a reason" in r.text
    assert app.state.proposal(2).state.value == "pending"
    c.post("/proposals/2/reject", data={"csrf": csrf, "reason": "duplicate"})
    assert app.state.proposal(2).state.value == "rejected"
    trail = {
        (e["proposal_id"], e["action"], e["actor"], e["reason"]) for e in app.state.audit_log()
    }
    assert (1, "proposal.approved", "api", "worth it") in trail
    assert (2, "proposal.rejected", "api", "duplicate") in trail
    again = c.post("/proposals/2/approve", data={"csrf": csrf})
    assert "cannot be approved" in again.text  # a message, not a traceback


def test_pending_first_then_severity_then_age(client: tuple[TestClient, App]) -> None:
    c, app = client
    made = {}
    with app.store.transaction():
        for name, sev, at in (
            ("old-warning", Severity.warning, "2026-03-01T00:00:00Z"),
            ("new-critical", Severity.critical, "2026-03-09T00:00:00Z"),
            ("old-critical", Severity.critical, "2026-03-02T00:00:00Z"),
        ):
            p = app.state.create_proposal(
                fingerprint=name,
                rule="stale-queue",
                kind="extra",
                subject=name,
                severity=sev,
                title=name,
                body="b",
                approval=Approval.manual,
                at=at,
                run_id=None,
            )
            made[name] = p.id
    csrf = login(c)
    c.post("/proposals/1/reject", data={"csrf": csrf, "reason": "no"})
    ids = _ids(c.get("/").text)
    assert ids.index(made["old-critical"]) < ids.index(made["new-critical"])
    assert ids.index(made["new-critical"]) < ids.index(made["old-warning"])
    assert ids[-1] == 1  # decided: after every pending one
    assert _ids(c.get("/?severity=critical").text) == [made["old-critical"], made["new-critical"]]
    assert _ids(c.get("/?kind=extra&state=pending").text) == [
        made["old-critical"],
        made["new-critical"],
        made["old-warning"],
    ]
    assert _ids(c.get("/?state=rejected").text) == [1]
    assert _ids(c.get("/?rule=no-such-rule").text) == []
    assert "unknown state" in c.get("/?state=nope").text


def test_bulk_approve_and_reject(client: tuple[TestClient, App]) -> None:
    c, app = client
    csrf = login(c)
    r = c.post("/proposals/bulk", data={"csrf": csrf, "action": "reject", "ids": ["1", "2"]})
    assert "needs a reason" in r.text and app.state.proposal(1).state.value == "pending"
    r = c.post("/proposals/bulk", data={"csrf": csrf, "action": "approve", "ids": ["1", "2"]})
    assert "2 approved" in r.text
    assert {app.state.proposal(i).state.value for i in (1, 2)} == {"scheduled"}
    assert app.store.get_task("reviewer-2") is not None
    r = c.post(
        "/proposals/bulk",
        data={"csrf": csrf, "action": "reject", "ids": "1", "reason": "changed my mind"},
    )
    assert app.state.proposal(1).state.value == "scheduled" and "cannot be rejected" in r.text


def test_silence_add_and_expire(client: tuple[TestClient, App]) -> None:
    c, app = client
    assert "Log in</a> to add" in c.get("/silences").text
    csrf = login(c)
    past = c.post(
        "/silences",
        data={
            "csrf": csrf,
            "rule": "stale-queue",
            "subject": "t*",
            "until": "2001-01-01T00:00",
            "comment": "old",
        },
    )
    assert "must be in the future" in past.text
    r = c.post(
        "/silences",
        data={
            "csrf": csrf,
            "rule": "stale-queue",
            "subject": "t*",
            "until": "2999-01-01T00:00",
            "comment": "known",
        },
    )
    assert 'id="silence-1"' in r.text and "2999-01-01T00:00:00Z" in r.text
    (s,) = app.state.silences(include_expired=True)
    assert (s.created_by, s.subject, s.comment) == ("api", "t*", "known")
    c.post("/silences/1/expire", data={"csrf": csrf})
    (s,) = app.state.silences(include_expired=True)
    assert s.expired_at is not None
    assert "No silence is in force" in c.get("/silences").text
    actions = [(e["action"], e["actor"]) for e in app.state.audit_search(action="silence")]
    assert actions == [("silence.expired", "api"), ("silence.added", "api")]


def test_sections_render(client: tuple[TestClient, App]) -> None:
    c, _ = client
    findings = c.get("/findings").text
    assert 'id="rule-stale-queue"' in findings and "proposal #1" in findings
    assert "proposal.created" in findings  # the history comes from the audit log
    runs = c.get("/runs").text
    assert 'id="run-1"' in runs and "failed" not in runs.split("<table")[0]
    pipeline = c.get("/pipeline").text
    assert pipeline.count("<polyline") >= 3 and "opus" in pipeline and "haiku" in pipeline
    assert 'id="goal-ship"' in pipeline and "<progress" in pipeline
    assert "opus" in pipeline.split('id="experiments"')[1]
    csrf = login(c)
    c.post("/proposals/1/approve", data={"csrf": csrf})
    audit = c.get("/audit?actor=api").text
    cell = '<td class="action" data-label="action">{}</td>'.format
    assert cell("proposal.approved") in audit and cell("proposal.created") not in audit
    created = c.get("/audit?action=proposal.created").text
    assert cell("proposal.created") in created and cell("proposal.approved") not in created


def test_deciding_needs_the_approve_scope(
    client: tuple[TestClient, App], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reviewer.api import page
    from reviewer.api.auth import Principal

    c, app = client
    monkeypatch.setattr(
        page, "principal_for_token", lambda a, token: Principal("viewer", frozenset({"read"}))
    )
    csrf = login(c)
    html = c.get("/").text
    assert "viewer" in html and "Approve</button>" not in html and 'id="bulk"' not in html
    r = c.post("/proposals/1/approve", data={"csrf": csrf})
    assert r.status_code == 403 and "needs the 'approve' scope" in r.text
    assert app.state.proposal(1).state.value == "pending"


@pytest.mark.postgres
def test_every_section_on_postgres() -> None:
    from tests.pg import fresh_schema_url

    with fresh_schema_url() as url:
        app = _app(url)
        try:
            with TestClient(create_app(app)) as c:
                for path in ("/", "/findings", "/runs", "/silences", "/pipeline", "/audit"):
                    assert c.get(path).status_code == 200, path
                csrf = login(c)
                c.post("/proposals/bulk", data={"csrf": csrf, "action": "approve", "ids": "1"})
                assert _ids(c.get("/?state=scheduled").text) == [1]
                audit = c.get("/audit?actor=api&action=proposal").text
                assert '<td class="action" data-label="action">proposal.scheduled</td>' in audit
                assert c.get("/pipeline").text.count("<polyline") >= 3
                assert "proposal.created" in c.get("/findings").text
        finally:
            app.close()


def test_findings_show_resolved_ones_with_their_history(client: tuple[TestClient, App]) -> None:
    c, app = client
    app.store.upsert_tasks(
        task_rows(
            [
                {
                    "id": "t2",
                    "title": "Docs",
                    "priority": "critical",
                    "status": "completed",
                    "created_at": "2026-03-01T00:00:00Z",
                    "updated_at": "2026-03-10T01:00:00Z",
                    "finished_at": "2026-03-10T01:00:00Z",
                }
            ]
        )
    )
    for hour in (2, 3, 4):
        app.engine.review(parse_ts(f"2026-03-10T0{hour}:00:00Z"))
    html = c.get("/findings").text
    open_part, resolved_part = html.split("Resolved recently")
    assert 'id="finding-' in resolved_part and "<td>t2</td>" in resolved_part
    assert '<span class="subject">t2</span>' not in open_part
    assert '<span class="subject">t1</span>' in open_part


def test_a_failed_cycle_stands_out(client: tuple[TestClient, App]) -> None:
    c, app = client
    with app.store.transaction():
        run = app.state.start_run("2026-03-10T05:00:00Z", "2026-03-10T05:00:00Z", "schedule")
        app.state.finish_run(
            run,
            status="failed",
            duration_ms=1500,
            errors=[{"rule": "stale-queue", "error": "<b>boom</b>"}],
        )
    html = c.get("/runs").text
    assert f"The latest cycle (#{run}) ended failed with 1 error(s)" in html
    assert f'<tr id="run-{run}" class="failed">' in html and '<tr id="run-1" class="">' in html
    assert "error: &lt;b&gt;boom&lt;/b&gt;" in html and "1.50 s" in html
