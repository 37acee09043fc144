"""The API's one edge layer: bounded bodies, security headers, error statuses.

``install`` puts it on an application: a pure ASGI middleware answers 413 to a
body over ``[reviewer] api_max_body_bytes`` (declared or streamed) before it
is held in memory and adds ``SECURITY_HEADERS`` to every response; exception
handlers turn a store locked by another writer into 503 with Retry-After, a
number no column can hold into 422, and a request that fails validation into
a 422 naming each field (FastAPI's own answer echoes the input, and an input
like Infinity then fails to serialise: a 500).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from store import StoreError, StoreLockedError
from store.secrets import redact

# A row id in a path: a positive 64-bit integer, so 2**70 is a 422, not a driver error.
RowId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]


# Sent with every response: the page loads nothing from elsewhere and is never framed;
# no inline script or style runs (the page's are /page.js and /page.css).
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; "
        b"style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        b"base-uri 'none'; form-action 'self'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class _BodyTooLarge(Exception):
    pass


class Guard:
    """The API's one edge layer (pure ASGI): bounded request bodies, security headers.

    A body over ``max_body`` bytes, declared or streamed, is answered 413 before
    it is held in memory; every response carries ``SECURITY_HEADERS``.
    """

    def __init__(self, inner: Any, max_body: int):
        self.inner = inner
        self.max_body = max_body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(send)
            return
        seen = 0
        started = False

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _BodyTooLarge
            return message

        async def headed(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        try:
            await self.inner(scope, counted, headed)
        except _BodyTooLarge:
            if not started:
                await self._too_large(send)

    async def _too_large(self, send: Any) -> None:
        body = json.dumps(
            {
                "detail": f"request body is larger than {self.max_body} bytes "
                "([reviewer] api_max_body_bytes)"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), *SECURITY_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": body})


def install(api: FastAPI, max_body: int) -> None:
    """Put the edge layer on ``api``."""

    @api.exception_handler(StoreLockedError)
    def _busy(request: Request, exc: StoreLockedError) -> JSONResponse:
        return JSONResponse(
            {"detail": redact(str(exc))}, status_code=503, headers={"Retry-After": "5"}
        )

    @api.exception_handler(StoreError)
    def _store_error(request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": redact(str(exc))}, status_code=503)

    @api.exception_handler(OverflowError)
    def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        return JSONResponse(
            {"detail": redact(f"a number is out of range (64-bit integers only): {exc}")},
            status_code=422,
        )

    @api.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
            got = json.dumps(err.get("input"), default=str)[:80] if "input" in err else None
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            detail.append(f"field '{loc}': {msg}" + (f" (got {got})" if got else ""))
        return JSONResponse({"detail": detail}, status_code=422)

    api.add_middleware(Guard, max_body=max_body)
