"""Talking to a pipeline over HTTP when it is slow, busy or briefly down.

Each request has a timeout. A request that fails with a connection error, a
timeout, 429 or a 5xx is tried again after an exponential, jittered backoff
(stamina), or after the pause the pipeline asked for in ``Retry-After``; at
most ``attempts`` tries of one request, and at most ``budget`` retries between
two ``reset_budget()`` calls (the HTTP store resets it at the start of each
pull, so one cycle against a failing pipeline ends in bounded time). Writes
carry an ``Idempotency-Key`` that stays the same across their retries.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import stamina

from store.base import StoreError

log = logging.getLogger("reviewer.store.http")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait for the pipeline and how often to try again (``[reviewer] http_*``)."""

    timeout_s: float = 30.0
    attempts: int = 5
    budget: int = 30
    max_retry_after_s: float = 120.0
    page_size: int = 1000
    wait_initial_s: float = 0.5
    wait_max_s: float = 30.0
    wait_jitter_s: float = 1.0


class _Transient(Exception):
    """A 429 or 5xx answer, raised so the retry loop sees it."""

    def __init__(self, response: httpx.Response):
        super().__init__(f"answered {response.status_code}")
        self.response = response


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class PipelineClient:
    """An httpx client with the retry policy above; raises ``StoreError`` with a clear message."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        policy: RetryPolicy,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url
        self.policy = policy
        self.http = httpx.Client(
            base_url=base_url,
            headers=dict(headers),
            timeout=httpx.Timeout(policy.timeout_s),
            transport=transport,
        )
        self.retries_left = policy.budget
        self.retried = 0  # retries since the last reset, for logs and tests

    def close(self) -> None:
        self.http.close()

    def reset_budget(self) -> None:
        self.retries_left = self.policy.budget
        self.retried = 0

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        tries: int = 0,
    ) -> httpx.Response:
        """One request, tried again on transient failures; the final answer (any status).

        ``tries`` caps the tries of this request below the policy's ``attempts``.
        """
        attempts = min(tries, self.policy.attempts) if tries > 0 else self.policy.attempts
        what = f"{method} {self.base_url}{path}"
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        stop: list[str] = []  # why the last failure was not retried, when it was our choice
        done = 0

        def again(exc: Exception) -> bool | float:
            if isinstance(exc, _Transient):
                wait = retry_after_s(exc.response.headers.get("Retry-After"))
                if wait is not None and wait > self.policy.max_retry_after_s:
                    stop.append(
                        f"it asked to retry after {wait:.0f} s, more than "
                        f"http_max_retry_after ({self.policy.max_retry_after_s:.0f} s)"
                    )
                    return False
                cause = f"answered {exc.response.status_code}"
            elif isinstance(exc, httpx.TransportError):
                wait, cause = None, f"{type(exc).__name__}: {exc}"
            else:
                return False
            if self.retries_left <= 0:
                stop.append(
                    f"the retry budget of this cycle is spent "
                    f"(http_retry_budget = {self.policy.budget})"
                )
                return False
            if done >= attempts:
                return False  # stamina stops here too; not a retry, so no budget spent
            self.retries_left -= 1
            self.retried += 1
            log.warning(
                "the pipeline failed a request; trying again",
                extra={
                    "request": what,
                    "cause": cause,
                    "try": done,
                    "retry_after_s": wait,
                    "retries_left": self.retries_left,
                },
            )
            return True if wait is None else wait

        started = time.monotonic()
        try:
            for attempt in stamina.retry_context(
                on=again,
                attempts=attempts,
                timeout=None,
                wait_initial=self.policy.wait_initial_s,
                wait_max=self.policy.wait_max_s,
                wait_jitter=self.policy.wait_jitter_s,
            ):
                with attempt:
                    done += 1
                    resp = self.http.request(
                        method, path, params=params, json=json, headers=headers
                    )
                    if resp.status_code == 429 or resp.status_code >= 500:
                        raise _Transient(resp)
        except _Transient as exc:
            resp = exc.response
            raise StoreError(
                f"{what} answered {resp.status_code} {_snippet(resp)}"
                f"{_gave_up(done, started, stop)}"
            ) from None
        except httpx.TransportError as exc:
            raise StoreError(
                f"cannot reach the pipeline at {self.base_url}{path} ({method}): "
                f"{type(exc).__name__}: {exc}"
                f"{_gave_up(done, started, stop)}"
            ) from exc
        return resp

    def pages(
        self, path: str, params: Mapping[str, str], *, missing_ok: bool = False
    ) -> Iterator[list[Any]]:
        """The items of a listing, page by page.

        Asks for ``limit`` items and follows the ``next`` cursor of a
        ``{"items": [...], "next": ...}`` answer until it is null; a plain JSON
        array is the whole listing (a pipeline that does not page). With
        ``missing_ok``, a 404 on the first page is an empty listing.
        """
        query = {**params, "limit": str(self.policy.page_size)}
        seen: set[str] = set()
        while True:
            resp = self.request("GET", path, params=query)
            if missing_ok and resp.status_code == 404 and not seen:
                return
            if resp.status_code != 200:
                raise StoreError(
                    f"GET {self.base_url}{path} answered {resp.status_code}: {_snippet(resp)}"
                )
            try:
                data = resp.json()
            except ValueError:
                raise StoreError(f"GET {self.base_url}{path} did not return JSON") from None
            if isinstance(data, list):
                yield data
                return
            if not isinstance(data, dict) or not isinstance(data.get("items"), list):
                raise StoreError(
                    f"GET {self.base_url}{path} returned {type(data).__name__}; expected a JSON "
                    'array or {"items": [...], "next": cursor or null}'
                )
            yield data["items"]
            cursor = data.get("next")
            if cursor is None or cursor == "":
                return
            cursor = str(cursor)
            if cursor in seen:
                raise StoreError(
                    f"GET {self.base_url}{path} returned the cursor {cursor[:40]!r} twice; "
                    "its paging loops"
                )
            seen.add(cursor)
            query = {**query, "cursor": cursor}


def _snippet(resp: httpx.Response) -> str:
    text = resp.text.strip()
    return f"({text[:200]})" if text else ""


def _gave_up(tries: int, started: float, stop: list[str]) -> str:
    took = time.monotonic() - started
    why = f": {stop[-1]}" if stop else ""
    return f" (gave up after {tries} {'try' if tries == 1 else 'tries'} in {took:.1f} s{why})"
