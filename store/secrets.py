"""The one place secrets are masked before text reaches a person.

``redact(text)`` hides the password in any URL (``scheme://user:PASSWORD@``), a
``password=`` parameter, a bearer token, and every secret value the process
knows: the tokens in ``REVIEWER_API_TOKEN``, ``REVIEWER_STORE_TOKEN`` and every
``REVIEWER_TOKEN_<NAME>``, and any value passed to ``register`` (the config's
``api_token`` and named tokens). The log formatters,
the command line's error layer and the API's error handlers all call it, so no
call site has to remember.
"""

from __future__ import annotations

import os
import re

_PASSWORD_IN_URL = re.compile(r"(://[^:/@?#\s]*:)[^@/?#\s]*@")
_PASSWORD_PARAM = re.compile(r"(password=)[^&\s'\"]*", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[^\s'\",]+", re.IGNORECASE)
_TOKEN_ENVS = ("REVIEWER_API_TOKEN", "REVIEWER_STORE_TOKEN")
_NAMED_TOKEN_PREFIX = "REVIEWER_TOKEN_"
# Shorter values would mask ordinary words; a token that short is no secret anyway.
_MIN_SECRET = 4
_registered: set[str] = set()
MASK = "***"


def register(value: str | None) -> None:
    """Treat ``value`` as a secret from now on: ``redact`` masks it wherever it appears."""
    if value and len(value) >= _MIN_SECRET:
        _registered.add(value)


def _secrets() -> list[str]:
    values = set(_registered)
    for name, value in os.environ.items():
        secret = name in _TOKEN_ENVS or (
            name.startswith(_NAMED_TOKEN_PREFIX) and not name.endswith("_SCOPES")
        )
        if secret and value and len(value) >= _MIN_SECRET:
            values.add(value)
    return sorted(values, key=len, reverse=True)  # longest first: no partial leftovers


def redact(text: str) -> str:
    """``text`` with every password and token it holds replaced by ``***``."""
    text = _PASSWORD_IN_URL.sub(r"\1" + MASK + "@", text)
    text = _PASSWORD_PARAM.sub(r"\1" + MASK, text)
    text = _BEARER.sub(r"\1" + MASK, text)
    for secret in _secrets():
        text = text.replace(secret, MASK)
    return text
