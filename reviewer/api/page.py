"""The review page and its forms: ``/`` (proposals), ``/findings``, ``/runs``,
``/silences``, ``/pipeline`` (metrics and goals; ``/metrics`` is Prometheus'),
``/audit``, ``/login``.

Server-rendered (``page_render``), usable without JavaScript (``/page.js`` only
adds "select all"). Reads are open like the API's; a form that changes state
needs a login (``websession``) whose principal holds the ``approve`` scope, and
is audited under that principal's name.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reviewer.api import websession
from reviewer.api.auth import principal_for_token
from reviewer.api.common import now_of
from reviewer.api.deps import get_app
from reviewer.api.guard import RowId
from reviewer.api.page_charts import metric_charts
from reviewer.api.page_render import (
    PROPOSAL_STATES,
    SEVERITIES,
    evidence_rows,
    pages,
    render,
)
from reviewer.app import App
from store import ARM_COLUMNS
from store.state import InvalidTransition, NotFound
from store.timeutil import fmt_ts, parse_ts, utcnow

router = APIRouter()

DECIDE_SCOPE = "approve"
MAX_BULK = 200
PAGE_LIMIT = 200  # proposals on one page; filters narrow the rest


def _asset(name: str) -> str:
    """A static file beside the templates (read through the same package loader)."""
    loader = pages.loader
    assert loader is not None
    return loader.get_source(pages, f"web/{name}")[0]


@router.get("/page.css", include_in_schema=False)
def page_css() -> Response:
    return Response(_asset("page.css"), media_type="text/css")


@router.get("/page.js", include_in_schema=False)
def page_js() -> Response:
    return Response(_asset("page.js"), media_type="text/javascript")


def _nav(a: App) -> list[tuple[str, str]]:
    """The page's sections. ``Controls`` and ``Report`` join when their data exists."""
    nav = [
        ("/", "Proposals"),
        ("/findings", "Findings"),
        ("/runs", "Runs"),
        ("/silences", "Silences"),
        ("/pipeline", "Metrics & goals"),
        ("/audit", "Audit"),
    ]
    # Other sections plug in here (e.g. ("/controls", "Controls"), ("/report", "Report"))
    # once their tables exist in the state.
    return nav


def _page(request: Request, a: App, template: str, current: str, **context: Any) -> HTMLResponse:
    session = websession.current_session(request)
    flash = []
    if session is not None:
        flash, session.flash = session.flash, []
    html = render(
        template,
        nav=_nav(a),
        current=current,
        session=session,
        user=session.principal if session else None,
        can_decide=bool(session and session.principal.can(DECIDE_SCOPE)),
        csrf=session.csrf if session else "",
        flash=flash,
        last_run=a.state.last_run(),
        here=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
        **context,
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def safe_next(value: str) -> str:
    """Only a path on this server: never another origin (``//x``, ``http://x``)."""
    # Browsers drop tabs and newlines inside a URL, so "/\t/evil" would become "//evil".
    if any(ord(ch) < 33 for ch in value) or "\\" in value:
        return "/"
    return value if value.startswith("/") and not value.startswith("//") else "/"


def _back(to: str) -> RedirectResponse:
    return RedirectResponse(safe_next(to), status_code=303)


class LoginFirst(Exception):
    """A form came without a session; its one argument is the page to return to."""


def login_redirect(request: Request, exc: Exception) -> Response:
    """Where a form without a session goes: ``/login``, then back to its page."""
    next_url = safe_next(str(exc.args[0]) if exc.args else "/")
    return _back("/login?" + urlencode({"next": next_url}, safe="/"))


async def _decider(request: Request) -> tuple[websession.Session, dict[str, list[str]]]:
    """The session of a form that changes state, after its login, CSRF and scope checks."""
    form = await websession.form_of(request)
    session = websession.current_session(request)
    if session is None:  # never logged in, logged out, or the server restarted
        raise LoginFirst(websession.first(form, "next") or "/")
    if not websession.same_secret(websession.first(form, "csrf"), session.csrf):
        raise HTTPException(
            403, "the form's CSRF token does not match your session; reload the page"
        )
    if not session.principal.can(DECIDE_SCOPE):
        raise HTTPException(
            403, f"{session.principal.name} may not change state (needs the '{DECIDE_SCOPE}' scope)"
        )
    return session, form


# -- login ---------------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/", a: App = Depends(get_app)) -> HTMLResponse:  # noqa: B008
    token = secrets.token_urlsafe(24)
    response = _page(
        request,
        a,
        "login.html",
        "/login",
        login_csrf=token,
        next_url=safe_next(next),
        error=None,
        token_configured=bool(a.config.api_token),
    )
    websession.set_cookie(request, response, websession.LOGIN_COOKIE, token, 3600)
    return response


@router.post("/login")
async def login(request: Request, a: App = Depends(get_app)) -> Response:  # noqa: B008
    form = await websession.form_of(request)
    next_url = safe_next(websession.first(form, "next"))
    if not websession.same_secret(
        websession.first(form, "csrf"), request.cookies.get(websession.LOGIN_COOKIE)
    ):
        raise HTTPException(403, "the login form expired; reload /login and try again")
    principal = principal_for_token(a, websession.first(form, "token"))
    if principal is None:
        token = secrets.token_urlsafe(24)
        response = _page(
            request,
            a,
            "login.html",
            "/login",
            login_csrf=token,
            next_url=next_url,
            error="That token is not known to this server.",
            token_configured=bool(a.config.api_token),
        )
        response.status_code = 401
        websession.set_cookie(request, response, websession.LOGIN_COOKIE, token, 3600)
        return response
    sid, session = websession.sessions_of(request).create(principal)
    session.flash.append(("ok", f"Logged in as {principal.name}."))
    back = _back(next_url)
    websession.set_cookie(request, back, websession.SESSION_COOKIE, sid, websession.SESSION_SECONDS)
    back.delete_cookie(websession.LOGIN_COOKIE, path="/")
    return back


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await websession.form_of(request)
    sid = request.cookies.get(websession.SESSION_COOKIE)
    session = websession.sessions_of(request).get(sid)
    if session is not None and not websession.same_secret(
        websession.first(form, "csrf"), session.csrf
    ):
        raise HTTPException(403, "the form's CSRF token does not match your session")
    websession.sessions_of(request).drop(sid)
    response = _back("/")
    response.delete_cookie(websession.SESSION_COOKIE, path="/")
    return response


# -- proposals -----------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def proposals_page(
    request: Request,
    state: str = Query(""),
    rule: str = Query(""),
    kind: str = Query(""),
    severity: str = Query(""),
    a: App = Depends(get_app),  # noqa: B008
) -> HTMLResponse:
    state = "" if state == "all" else state
    problems = []
    if state and state not in PROPOSAL_STATES:
        problems.append(f"unknown state {state!r}; showing every state")
        state = ""
    if severity and severity not in SEVERITIES:
        problems.append(f"unknown severity {severity!r}; showing every severity")
        severity = ""
    items = a.state.proposal_queue(
        state=state, rule=rule, kind=kind, severity=severity, limit=PAGE_LIMIT
    )
    findings = a.state.findings_by_print(sorted({p.fingerprint for p in items}))
    filters = {"state": state, "rule": rule, "kind": kind, "severity": severity}
    facets = a.state.proposal_facets()
    return _page(
        request,
        a,
        "index.html",
        "/",
        proposals=[
            {
                **p.public(),
                "evidence": evidence_rows(findings.get(p.fingerprint, {}).get("payload")),
                "finding_state": findings.get(p.fingerprint, {}).get("state"),
            }
            for p in items
        ],
        counts=a.state.proposal_state_counts(),
        filters=filters,
        query=urlencode({k: v for k, v in filters.items() if v}),
        rules=sorted({r["rule"] for r in facets}),
        kinds=sorted({r["kind"] for r in facets}),
        problems=problems,
        limit=PAGE_LIMIT,
    )


def _decide(a: App, session: websession.Session, pid: int, action: str, reason: str) -> str:
    """Approve or reject one proposal as the session's principal; a line for the flash."""
    by = session.principal.name
    try:
        if action == "approve":
            p = a.engine.approve(pid, by=by, reason=reason or None)
            return f"#{pid} {p.state.value}" + (f" as {p.task_id}" if p.task_id else "")
        p = a.engine.reject(pid, by=by, reason=reason or None)
        return f"#{pid} {p.state.value}"
    except (InvalidTransition, NotFound) as exc:
        raise _Refused(str(exc)) from None


class _Refused(Exception):
    pass


@router.post("/proposals/{proposal_id}/{action}")
async def decide(
    request: Request,
    proposal_id: RowId,
    action: str,
    a: App = Depends(get_app),  # noqa: B008
) -> Response:
    if action not in ("approve", "reject"):
        raise HTTPException(404, "no such action; expected approve or reject")
    session, form = await _decider(request)
    reason = websession.first(form, "reason")[:2000]
    if action == "reject" and not reason:
        session.flash.append(("error", f"#{proposal_id}: a rejection needs a reason."))
    else:
        try:
            session.flash.append(("ok", _decide(a, session, proposal_id, action, reason)))
        except _Refused as exc:
            session.flash.append(("error", str(exc)))
    return _back(websession.first(form, "next") or "/")


@router.post("/proposals/bulk")
async def decide_many(request: Request, a: App = Depends(get_app)) -> Response:  # noqa: B008
    session, form = await _decider(request)
    action = websession.first(form, "action")
    reason = websession.first(form, "reason")[:2000]
    ids = sorted({int(v) for v in form.get("ids", []) if v.isdigit() and 0 < int(v) < 2**63})
    if action not in ("approve", "reject"):
        session.flash.append(("error", "choose Approve selected or Reject selected."))
    elif not ids:
        session.flash.append(("error", "select at least one proposal."))
    elif len(ids) > MAX_BULK:
        session.flash.append(("error", f"at most {MAX_BULK} proposals at once."))
    elif action == "reject" and not reason:
        session.flash.append(("error", "a bulk rejection needs a reason."))
    else:
        done, refused = [], []
        for pid in ids:
            try:
                done.append(_decide(a, session, pid, action, reason or "bulk approve"))
            except _Refused as exc:
                refused.append(str(exc))
        if done:
            session.flash.append(("ok", f"{len(done)} {action}d: " + "; ".join(done)))
        for msg in refused:
            session.flash.append(("error", msg))
    return _back(websession.first(form, "next") or "/")


# -- findings ------------------------------------------------------------------------------
@router.get("/findings", response_class=HTMLResponse)
def findings_page(
    request: Request,
    rule: str = Query(""),
    a: App = Depends(get_app),  # noqa: B008
) -> HTMLResponse:
    rows = a.state.list_findings("open", rule or None, 500)
    prints = [r["fingerprint"] for r in rows]
    proposals = a.state.latest_proposals(prints)
    history = a.state.audit_for_prints(prints)
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["rule"], []).append(
            {
                **r,
                "evidence": evidence_rows(r["payload"]),
                "proposal": proposals.get(r["fingerprint"]),
                "history": history.get(r["fingerprint"], []),
            }
        )
    resolved = a.state.list_findings("resolved", rule or None, 50)
    return _page(
        request,
        a,
        "findings.html",
        "/findings",
        groups=sorted(groups.items()),
        resolved=sorted(resolved, key=lambda r: r["resolved_at"] or "", reverse=True),
        rule=rule,
        total=len(rows),
    )


# -- runs ----------------------------------------------------------------------------------
@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, a: App = Depends(get_app)) -> HTMLResponse:  # noqa: B008
    return _page(request, a, "runs.html", "/runs", runs=[r.public() for r in a.state.runs(50)])


# -- silences ------------------------------------------------------------------------------
@router.get("/silences", response_class=HTMLResponse)
def silences_page(request: Request, a: App = Depends(get_app)) -> HTMLResponse:  # noqa: B008
    now = fmt_ts(utcnow())
    items = a.state.silences(include_expired=True)
    active = [s for s in items if s.expired_at is None and s.until > now]
    ended = [s for s in items if not (s.expired_at is None and s.until > now)]
    return _page(
        request,
        a,
        "silences.html",
        "/silences",
        active=[s.public() for s in reversed(active)],
        ended=[s.public() for s in reversed(ended[-50:])],
        rules=sorted(r.id for r in a.config.enabled_rules()),
    )


@router.post("/silences")
async def add_silence(request: Request, a: App = Depends(get_app)) -> Response:  # noqa: B008
    from reviewer.app import check_silence

    session, form = await _decider(request)
    rule, subject = websession.first(form, "rule"), websession.first(form, "subject")
    until_text, comment = websession.first(form, "until"), websession.first(form, "comment")
    try:
        if not (rule and subject and until_text and comment):
            raise ValueError("a silence needs a rule, a subject glob, an end time and a comment")
        # A browser's datetime-local field has no zone: it is read as UTC, as the page says.
        until_at = parse_ts(until_text if until_text[-1:].isalpha() else until_text + "Z")
        check_silence(rule, subject, until_at, utcnow())
    except ValueError as exc:
        session.flash.append(("error", f"silence not added: {exc}"))
        return _back("/silences")
    with a.store.transaction():
        s = a.state.add_silence(
            rule=rule,
            subject=subject,
            until=fmt_ts(until_at),
            by=session.principal.name,
            comment=comment[:2000],
            at=fmt_ts(utcnow()),
        )
    session.flash.append(("ok", f"silence #{s.id} added until {s.until}"))
    return _back("/silences")


@router.post("/silences/{silence_id}/expire")
async def expire_silence(
    request: Request,
    silence_id: RowId,
    a: App = Depends(get_app),  # noqa: B008
) -> Response:
    session, form = await _decider(request)
    try:
        with a.store.transaction():
            a.state.expire_silence(
                silence_id,
                by=session.principal.name,
                at=fmt_ts(utcnow()),
                reason=websession.first(form, "reason") or None,
            )
        session.flash.append(("ok", f"silence #{silence_id} expired"))
    except NotFound as exc:
        session.flash.append(("error", str(exc)))
    return _back("/silences")


# -- metrics, goals, A/B -------------------------------------------------------------------
def _experiments(a: App, view: Any) -> list[dict[str, Any]]:
    from reviewer.config import ConfigError
    from reviewer.experiments import compare_arms

    out = []
    for by in ARM_COLUMNS:
        try:
            result = compare_arms(view, by, config=a.config)
        except (ValueError, ConfigError) as exc:
            out.append({"by": by, "error": str(exc), "arms": []})
            continue
        if len(result["arms"]) >= 2:
            out.append(result)
    return out


@router.get("/pipeline", response_class=HTMLResponse)
def pipeline_page(request: Request, a: App = Depends(get_app)) -> HTMLResponse:  # noqa: B008
    from store.goals import goals_report

    s = a.config.goal_settings()
    view = a.store.view(now_of(a))
    return _page(
        request,
        a,
        "pipeline.html",
        "/pipeline",
        charts=[(col, metric_charts(view, col)) for col in ("model", "task_type")],
        goals=goals_report(
            view, s["goals"], running_weight=s["running_weight"], rate_window=s["rate_window"]
        ),
        experiments=_experiments(a, view),
        as_of=view.now_ts,
    )


# -- audit ---------------------------------------------------------------------------------
@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    actor: str = Query(""),
    action: str = Query(""),
    rule: str = Query(""),
    a: App = Depends(get_app),  # noqa: B008
) -> HTMLResponse:
    entries = a.state.audit_search(
        actor=actor or None, action=action or None, rule=rule or None, limit=300
    )
    return _page(
        request,
        a,
        "audit.html",
        "/audit",
        entries=entries,
        filters={"actor": actor, "action": action, "rule": rule},
        facets=a.state.audit_facets(),
        rules=sorted({r["rule"] for r in a.state.proposal_facets()}),
    )
