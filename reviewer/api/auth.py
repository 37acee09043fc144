"""Who is calling: a presented token becomes a named ``Principal`` with scopes.

Scopes are ``read``, ``ingest``, ``approve`` and ``admin``; ``admin`` holds every
scope, and every scope holds ``read``. The page's cookie login and the API's
bearer check both go through ``principal_for_token``, so a decision is audited
under the token's name whichever way it came.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from reviewer.app import App

SCOPES = ("read", "ingest", "approve", "admin")


@dataclass(frozen=True)
class Principal:
    """A caller the server knows: the token's name (the audit actor) and its scopes."""

    name: str
    scopes: frozenset[str]

    def can(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes or scope == "read"


def principal_for_token(app: App, token: str) -> Principal | None:
    """The principal whose token this is, compared in constant time; None when unknown."""
    expected = app.config.api_token
    if not token or not expected:
        return None
    if hmac.compare_digest(token.encode(), expected.encode()):
        return Principal("api", frozenset(SCOPES))
    return None
