"""Who is calling: a presented token becomes a named ``Principal`` with scopes.

Scopes are ``read``, ``ingest``, ``approve`` and ``admin``; ``admin`` holds every
scope, and every scope holds ``read``. Tokens are named in config
(``[reviewer.tokens.<name>]``) or the environment (``REVIEWER_TOKEN_<NAME>``); the
legacy ``api_token`` / ``REVIEWER_API_TOKEN`` is the token ``api`` with every
scope (``Config.api_tokens``). The page's cookie login and the API's bearer
check both go through ``principal_for_token``, so a decision is audited under
the token's name whichever way it came.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from reviewer.app import App
from reviewer.config import ALL_SCOPES

SCOPES = ALL_SCOPES


@dataclass(frozen=True)
class Principal:
    """A caller the server knows: the token's name (the audit actor) and its scopes."""

    name: str
    scopes: frozenset[str]

    def can(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes or scope == "read"


def principal_for_token(app: App, token: str) -> Principal | None:
    """The principal whose token this is, compared in constant time; None when unknown.

    Every configured token is compared (no early exit), so the time taken does not
    say which token, or how much of one, matched."""
    if not token:
        return None
    given = token.encode()
    found: Principal | None = None
    for t in app.config.api_tokens():
        if hmac.compare_digest(given, t.value.encode()) and found is None:
            found = Principal(t.name, t.scopes)
    return found


def tokens_configured(app: App) -> bool:
    """Whether any token is usable, i.e. whether any state change is possible over HTTP."""
    return bool(app.config.api_tokens())
