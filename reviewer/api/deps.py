"""What every API route shares: the opened reviewer and the bearer-token checks.

``require_scope(scope)`` guards a route that changes state and gives it the
``Principal`` (whose name is the audit actor); ``require_read`` guards the reads
when ``[reviewer] reads_require_token = true``. ``actor_for`` is the one place a
request may name someone other than its token as the actor.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reviewer.api.auth import Principal, principal_for_token, tokens_configured
from reviewer.app import App

_bearer = HTTPBearer(auto_error=False)
ACTOR_HEADER = "X-Reviewer-Actor"


def get_app(request: Request) -> App:
    """The ``App`` the server was started with (``request.app.state.reviewer``)."""
    app: App = request.app.state.reviewer
    return app


def _principal(app: App, credentials: HTTPAuthorizationCredentials | None, scope: str) -> Principal:
    if not tokens_configured(app):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "this server has no API token configured; set REVIEWER_API_TOKEN, "
            "[reviewer] api_token or a [reviewer.tokens.<name>] table to allow "
            + ("reads" if scope == "read" else "changes"),
        )
    principal = principal_for_token(app, credentials.credentials if credentials else "")
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not principal.can(scope):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"token {principal.name!r} does not have the {scope!r} scope this needs "
            f"(it has: {', '.join(sorted(principal.scopes))})",
        )
    return principal


def require_scope(scope: str) -> Callable[..., Principal]:
    """A dependency: the caller's ``Principal``, which must hold ``scope``.

    401 without a known bearer token, 403 when the token lacks the scope or when
    no token is configured at all (so a forgotten token never leaves the API open).
    """

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Principal:
        return _principal(get_app(request), credentials, scope)

    return dependency


def require_read(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
) -> Principal | None:
    """Guard of the reads: open (None) unless ``[reviewer] reads_require_token``."""
    app = get_app(request)
    if not app.config.reviewer.reads_require_token:
        return None
    return _principal(app, credentials, "read")


def actor_for(request: Request, principal: Principal, named: str | None = None) -> str:
    """The audit actor of a change: the token's name.

    A request may name the person it acts for (a ``by`` field or the
    ``X-Reviewer-Actor`` header) only with an ``admin`` token, and is then
    recorded as ``"<named> via <token>"``, so the trail still says which token
    acted; from any other token the attempt is refused (403).
    """
    named = (named or request.headers.get(ACTOR_HEADER, "")).strip()[:200]
    if not named or named == principal.name:
        return principal.name
    if "admin" not in principal.scopes:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"token {principal.name!r} may not name another actor ({named!r}): only a token "
            "with the admin scope may; the change is recorded under the token's name",
        )
    return f"{named} via {principal.name}"


def require_token(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
) -> str:
    """Guard of an admin change that only needs the actor's name (an ``admin`` token)."""
    principal = _principal(get_app(request), credentials, "admin")
    return actor_for(request, principal)
