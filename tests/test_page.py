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
ADMIN = "alice-admin-token-0123"  # the token named alice, admin scope
APPROVER = "bob-approve-token-0123"  # the token named bob, approve scope only
HOSTILE = "<script>alert('x')</script> <img src=x onerror=alert(1)>"


def _app(store_url: str) -> App:
    cfg = make_config(
        {
            "reviewer": {
                "store": store_url,
                "api_token": TOKEN,
                "tokens": {
                    "alice": {"token": ADMIN, "scopes": ["admin"]},
                    "bob": {"token": APPROVER, "scopes": ["approve"]},
                },
            },
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
    forged = csrf[:-1] + ("B" if csrf.endswith("A") else "A")
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
        assert c.post(path, data={**data, "csrf": forged}).status_code == 403, path
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
                cid = _control(app)
                for path in ("/", "/findings", "/runs", "/silences", "/pipeline", "/audit"):
                    assert c.get(path).status_code == 200, path
                for path in ("/controls", "/report", "/report?hints=1"):
                    assert c.get(path).status_code == 200, path
                csrf = login(c, ADMIN)
                c.post(f"/controls/{cid}/lift", data={"csrf": csrf, "reason": "done"})
                assert app.state.control(cid).lifted_by == "alice"
                c.post("/logout", data={"csrf": csrf})
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


# -- controls, report, incidents, notifications ----------------------------------------------
def _control(app: App, target: str = "executor:runner-c", **extra: object) -> int:
    from store import ControlSpec

    finding = app.state.list_findings("open", None, 1)[0]
    with app.store.transaction():
        control, _ = app.state.apply_control(
            ControlSpec.model_validate({"kind": "pause", "target": target, **extra}),
            reason=HOSTILE,
            by=HOSTILE,
            at="2026-03-10T00:00:00Z",
            expires_at="2999-01-01T00:00:00Z",
            fingerprint=finding["fingerprint"],
            rule=finding["rule"],
            proposal_id=1,
        )
    return control.id


def test_controls_page_lists_escapes_and_lifts_as_the_token(
    client: tuple[TestClient, App],
) -> None:
    c, app = client
    cid = _control(app, "executor:<b>runner</b>")
    other = _control(app, "model:opus")
    html = c.get("/controls").text
    assert "<script>alert" not in html and "<b>runner" not in html
    assert "&lt;b&gt;runner&lt;/b&gt;" in html and f'id="control-{cid}"' in html
    assert 'href="/?state=all#proposal-1"' in html and "#finding-" in html
    assert "/controls/" not in html and "Log in</a> with an admin token" in html
    assert '<a href="/controls" class="current"' in html  # a nav entry

    # bob may approve proposals but not lift controls (the API's lift needs admin too).
    csrf = login(c, APPROVER)
    assert "/lift" not in c.get("/controls").text
    r = c.post(f"/controls/{cid}/lift", data={"csrf": csrf, "reason": "x"})
    assert r.status_code == 403 and "needs the 'admin' scope" in r.text
    c.post("/logout", data={"csrf": csrf})

    csrf = login(c, ADMIN)
    assert f'action="/controls/{cid}/lift"' in c.get("/controls").text
    assert c.post(f"/controls/{cid}/lift", data={"reason": "x"}).status_code == 403  # no CSRF
    r = c.post(f"/controls/{cid}/lift", data={"csrf": csrf, "reason": " "})
    assert "give a reason" in r.text and app.state.control(cid).lifted_at is None
    r = c.post(f"/controls/{cid}/lift", data={"csrf": csrf, "reason": "runner replaced"})
    assert f"control #{cid} (pause executor:&lt;b&gt;runner&lt;/b&gt;) lifted" in r.text
    lifted = app.state.control(cid)
    assert (lifted.lifted_by, lifted.lift_reason) == ("alice", "runner replaced")
    assert app.state.control(other).lifted_at is None
    ended = r.text.split("Lifted or expired recently")[1]
    assert f'id="control-{cid}"' in ended and "runner replaced" in ended
    assert f'id="control-{other}"' not in ended
    (entry,) = app.state.audit_search(action="control.lifted")
    assert (entry["actor"], entry["reason"]) == ("alice", "runner replaced")
    again = c.post(f"/controls/{cid}/lift", data={"csrf": csrf, "reason": "twice"})
    assert "already lifted" in again.text
    assert (
        "no control with id 999"
        in c.post("/controls/999/lift", data={"csrf": csrf, "reason": "x"}).text
    )


def _reject_all(c: TestClient, app: App, reason: str) -> None:
    """Three more proposals of stale-queue, then every pending one rejected (noisy)."""
    with app.store.transaction():
        for i in range(3):
            app.state.create_proposal(
                fingerprint=f"extra{i}",
                rule="stale-queue",
                kind="stale",
                subject=f"x{i}",
                severity=Severity.warning,
                title=f"extra {i}",
                body="b",
                approval=Approval.manual,
                at="2026-03-09T00:00:00Z",
                run_id=None,
            )
    csrf = login(c)
    ids = [str(p.id) for p in app.state.proposals(state="pending")]
    c.post("/proposals/bulk", data={"csrf": csrf, "action": "reject", "ids": ids, "reason": reason})


def test_report_shows_the_ledger_and_reasons_escaped(client: tuple[TestClient, App]) -> None:
    c, app = client
    _reject_all(c, app, HOSTILE)
    html = c.get("/report").text
    assert "<script>alert" not in html and "&lt;script&gt;alert(" in html
    row = html.split('id="ledger-stale-queue"')[1].split("</tr>")[0]
    rejected = len(app.state.proposals(state="rejected"))
    assert f'<td data-label="rejected" class="num">{rejected}</td>' in row
    assert '<td data-label="rejection rate" class="num">100%</td>' in row
    assert 'id="rejections"' in html and 'id="compute-hints"' in html
    assert 'id="hint-' not in html  # hints wait for ?hints=1


def test_report_hints_only_on_request(
    client: tuple[TestClient, App], monkeypatch: pytest.MonkeyPatch
) -> None:
    import reviewer.ledger

    c, app = client
    _reject_all(c, app, "noise")
    calls: list[str] = []
    real = reviewer.ledger.tuning_hint

    def counted(*args: object, **kw: object) -> object:
        calls.append("hint")
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(reviewer.ledger, "tuning_hint", counted)
    c.get("/report")
    assert calls == []  # the fast default replays nothing
    html = c.get("/report?hints=1").text
    assert calls and 'id="hint-stale-queue"' in html
    hint = html.split('id="hint-stale-queue"')[1].split("</article>")[0]
    assert "reviewer backtest --from" in hint and "Hide the hints" in html
    # A table option reads as config does, not as a Python dict.
    assert "critical = 1d" in hint and "{" not in hint.split("max_idle_by_priority</code>")[1][:80]


def test_breaker_reset_needs_admin_a_reason_and_is_audited(
    client: tuple[TestClient, App],
) -> None:
    c, app = client
    with app.store.transaction():
        app.state.trip_breaker(
            "stale-queue", at="2026-03-10T00:00:00Z", rejections=5, reason=HOSTILE
        )
    html = c.get("/report").text
    assert 'id="breaker-stale-queue"' in html and "<script>alert" not in html
    assert "reviewer rules reset-breaker stale-queue" in html and "/reset" not in html
    csrf = login(c, APPROVER)
    r = c.post("/report/breakers/stale-queue/reset", data={"csrf": csrf, "reason": "x"})
    assert r.status_code == 403 and "needs the 'admin' scope" in r.text
    c.post("/logout", data={"csrf": csrf})
    csrf = login(c, ADMIN)
    path = "/report/breakers/stale-queue/reset"
    assert c.post(path, data={"reason": "x"}).status_code == 403
    assert "give a reason" in c.post(path, data={"csrf": csrf}).text
    assert "stale-queue" in app.state.tripped_breakers()
    r = c.post(path, data={"csrf": csrf, "reason": "tuned the rule"})
    assert "reset the breaker of stale-queue" in r.text and 'id="breaker-' not in r.text
    assert app.state.tripped_breakers() == {}
    (entry,) = app.state.audit_search(action="rule.breaker_reset")
    assert (entry["actor"], entry["reason"]) == ("alice", "tuned the rule")
    assert "is not tripped" in c.post(path, data={"csrf": csrf, "reason": "again"}).text


def test_findings_of_an_open_incident_come_first(client: tuple[TestClient, App]) -> None:
    import json

    c, app = client
    app.store.upsert_tasks(
        task_rows([{"id": "t3", "title": "Third", "created_at": "2026-03-01T00:00:00Z"}])
    )
    app.engine.review(parse_ts("2026-03-10T00:30:00Z"))
    rows = app.state.list_findings("open", None, 10)
    assert len(rows) >= 3
    cause, symptom = rows[1]["fingerprint"], rows[0]["fingerprint"]
    with app.store.transaction():
        # A symptom inhibited before it had a proposal of its own.
        app.state.open_finding(
            {
                "fp": "quiet-symptom",
                "rule": "stale-queue",
                "kind": "stale",
                "subject": "t9",
                "severity": "warning",
                "summary": "held back",
                "payload": "{}",
                "at": "2026-03-10T00:30:00Z",
                "run": None,
                "silenced_by": None,
            }
        )
        iid = app.state.open_incident(
            kind="incident",
            key="executor:<i>x</i>",
            fingerprint="inc-print",
            rule=rows[1]["rule"],
            cause=cause,
            members=[cause, symptom, "quiet-symptom"],
            payload=json.dumps(
                {
                    "title": "Incident " + HOSTILE,
                    "severity": "critical",
                    "evidence": {"likeliest_cause": "stale-queue/stale " + HOSTILE},
                }
            ),
            at="2026-03-10T00:00:00Z",
            reason="grouped",
        )
    html = c.get("/findings").text
    assert "<script>alert" not in html and "<i>x</i>" not in html
    incident, rest = html.split(f'id="incident-{iid}"')[1].split("Other open findings, by rule")
    # The likeliest cause leads its members; neither appears again in the per-rule groups.
    assert incident.index(f'id="finding-{cause}"') < incident.index(f'id="finding-{symptom}"')
    assert "likeliest cause</span>" in incident.split(f'id="finding-{symptom}"')[0]
    assert "Likeliest cause: <strong>stale-queue/stale &lt;script&gt;" in incident
    assert f'id="finding-{cause}"' not in rest and f'id="finding-{symptom}"' not in rest
    assert 'id="rule-stale-queue"' in rest  # the others, by rule
    quiet = incident.split('id="finding-quiet-symptom"')[1].split("</article>")[0]
    assert f'<a href="#incident-{iid}">held back by incident #{iid}</a>' in quiet


def test_notifications_panel_on_runs(tmp_path: Path) -> None:
    cfg = make_config(
        {
            "reviewer": {"store": f"sqlite:///{tmp_path / 'n.db'}"},
            "notify": {
                "receivers": {
                    "ops": {"type": "webhook", "url": "http://127.0.0.1:9/hook?token=s3cretvalue"},
                    "idle": {"type": "webhook", "url": "http://127.0.0.1:9/other"},
                }
            },
        }
    )
    app = App.from_config(cfg)
    try:
        with app.store.transaction():
            for key in ("a", "b", "c"):
                b = app.state.add_notify_batch(
                    at="2026-03-10T00:00:00Z",
                    run_id=None,
                    audit=(ord(key), ord(key) + 1),
                    runs=(0, 0),
                )
                assert b is not None
                app.state.queue_notification(
                    batch_id=b, receiver="ops", events=1, payload="{}", key=key, at="t"
                )
            pending = app.state.pending_notifications("ops")
            app.state.notification_sent(pending[0]["id"], "2026-03-10T00:01:00Z")
            app.state.notification_failed(pending[1]["id"], HOSTILE, "t2", drop=True)
            app.state.notification_failed(pending[2]["id"], "HTTP 503", "t3", drop=False)
        with TestClient(create_app(app)) as c:
            html = c.get("/runs").text
        assert html.count('id="receiver-ops"') == 1
        panel = html.split('id="notifications"')[1]
        ops = panel.split('id="receiver-ops"')[1].split("</tr>")[0]
        assert 'class="failed"' in html.split('id="receiver-ops"')[1][:30]
        for label, n in (("sent", 1), ("pending", 1), ("dropped", 1)):
            assert f'data-label="{label}" class="num">{n}</td>' in ops, label
        assert "HTTP 503" in ops and "failing" in ops
        assert "s3cretvalue" not in html and "<script>alert" not in html
        idle = panel.split('id="receiver-idle"')[1].split("</tr>")[0]
        assert "idle" in idle and 'data-label="sent" class="num">0</td>' in idle
    finally:
        app.close()


def test_reads_behind_a_token_need_a_login(tmp_path: Path) -> None:
    cfg = make_config(
        {
            "reviewer": {
                "store": f"sqlite:///{tmp_path / 'r.db'}",
                "api_token": TOKEN,
                "reads_require_token": True,
            }
        }
    )
    app = App.from_config(cfg)
    try:
        with TestClient(create_app(app)) as c:
            for path in ("/", "/findings", "/controls", "/report", "/audit"):
                r = c.get(path, follow_redirects=False)
                assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
            assert c.get("/login").status_code == 200
            login(c)
            assert c.get("/controls").status_code == 200
    finally:
        app.close()
