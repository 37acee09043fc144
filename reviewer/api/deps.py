"""What every API route shares: the opened reviewer and the bearer-token check."""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reviewer.app import App

_bearer = HTTPBearer(auto_error=False)


def get_app(request: Request) -> App:
    """The ``App`` the server was started with (``request.app.state.reviewer``)."""
    app: App = request.app.state.reviewer
    return app


def require_token(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
) -> str:
    """Guard for routes that change state: a bearer token from config or env.

    Returns the actor name recorded in the audit log: ``api``, or the value of
    an ``X-Reviewer-Actor`` header when ``[reviewer] api_token_sets_actor`` allows
    the token to name one (otherwise the header is ignored). With no token
    configured every change is refused, so a forgotten token never leaves the
    API open.
    """
    app = get_app(request)
    expected = app.config.api_token
    if not expected:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "this server has no API token configured; set REVIEWER_API_TOKEN or "
            "[reviewer] api_token to allow changes",
        )
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if app.config.reviewer.api_token_sets_actor:
        return request.headers.get("X-Reviewer-Actor", "").strip()[:200] or "api"
    return "api"
