"""The review page's login: a server-side session behind an HttpOnly cookie, and CSRF.

``POST /login`` turns a token into a ``Principal`` with ``auth.principal_for_token``
and keeps it in memory under a random session id; the browser holds only that
id, in an HttpOnly, SameSite=Strict cookie (never the token). Every form the
page renders carries the session's CSRF token in a hidden field, and every
POST checks it in constant time. The login form itself, having no session yet,
uses a double-submit token: a random value both in a short-lived cookie and in
the form. Sessions live in the server process: a restart logs everyone out.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from fastapi import HTTPException, Request
from starlette.responses import Response

from reviewer.api.auth import Principal

SESSION_COOKIE = "reviewer_session"
LOGIN_COOKIE = "reviewer_login_csrf"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 1000  # the oldest is dropped beyond this, so logins cannot fill memory
MAX_FORM_FIELDS = 2000


@dataclass
class Session:
    """One logged-in browser: who, its CSRF token, when it ends, messages to show once."""

    principal: Principal
    csrf: str
    expires: float
    flash: list[tuple[str, str]] = field(default_factory=list)


class Sessions:
    """Sessions by id, in memory, bounded in number and in time."""

    def __init__(self, seconds: int = SESSION_SECONDS, cap: int = MAX_SESSIONS):
        self.seconds = seconds
        self.cap = cap
        self._by_id: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, principal: Principal) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        session = Session(principal, secrets.token_urlsafe(32), time.time() + self.seconds)
        with self._lock:
            self._by_id[sid] = session
            while len(self._by_id) > self.cap:
                self._by_id.popitem(last=False)
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            session = self._by_id.get(sid)
            if session is not None and session.expires < time.time():
                del self._by_id[sid]
                return None
            return session

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)


def sessions_of(request: Request) -> Sessions:
    """The server's session table (made on first use)."""
    state = request.app.state
    sessions: Sessions | None = getattr(state, "page_sessions", None)
    if sessions is None:
        sessions = state.page_sessions = Sessions()
    return sessions


def current_session(request: Request) -> Session | None:
    return sessions_of(request).get(request.cookies.get(SESSION_COOKIE))


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time equality of two secrets; a missing one never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def set_cookie(request: Request, response: Response, name: str, value: str, seconds: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=seconds,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def form_of(request: Request) -> dict[str, list[str]]:
    """The fields of a urlencoded form body (each name with all its values)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if not raw and not ctype:
        return {}
    if ctype != "application/x-www-form-urlencoded":
        raise HTTPException(415, "expected a form (application/x-www-form-urlencoded)")
    body = raw.decode("utf-8", "replace")
    try:
        return parse_qs(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        raise HTTPException(413, f"a form may have at most {MAX_FORM_FIELDS} fields") from None


def first(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name) or [""]
    return values[0].strip()
