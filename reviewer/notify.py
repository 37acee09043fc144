"""Notifications: tell people what a review cycle (and everyone between cycles) did.

The events are the audit log's rows written since the last notification batch,
plus the review runs since then that failed (``cycle.failed``), so a decision
made between cycles (CLI, API, the page) is told at the next cycle. After each
cycle has committed, ``after_cycle`` makes one batch of them and, for every
receiver whose routes (events, rules, severities) match some, one message: a
generic JSON webhook, a Slack-compatible incoming webhook, or an email over
SMTP. Never one message per finding.

Messages wait in the outbox (``reviewer_notify_outbox``) until sent. A send
retries 429 and 5xx answers (and lost connections) with exponential backoff,
honouring ``Retry-After``, within the cycle's bounded sending time; each message
carries an ``Idempotency-Key`` that stays the same for its receiver and batch,
so a retry is not a second message. A message that fails is retried at the
next cycle and dropped after ``[notify] max_attempts`` failed cycles, with a log
line and an audit entry. Nothing here can fail or block a review cycle.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from store import Severity
from store.secrets import redact, register
from store.state import ReviewerState
from store.timeutil import Duration, fmt_ts, utcnow

if TYPE_CHECKING:
    from datetime import datetime

    from reviewer.app import App
    from reviewer.config import Config
    from reviewer.engine import ReviewResult

log = logging.getLogger("reviewer.notify")

# Audit actions (and the synthesised cycle.failed) a route may name. Others add
# actions as they come; a route may also use globs such as "proposal.*" or "*".
EVENTS: tuple[str, ...] = (
    "proposal.created",
    "proposal.approved",
    "proposal.rejected",
    "proposal.scheduled",
    "proposal.resolved",
    "proposal.superseded",
    "incident.opened",
    "control.applied",
    "control.lifted",
    "cycle.failed",
    "finding.opened",
    "finding.regressed",
    "finding.resolved",
    "finding.silenced",
    "silence.added",
    "silence.expired",
    "notification.dropped",
    "incident.grew",
    "incident.resolved",
    "burst.opened",
    "burst.grew",
    "burst.resolved",
    "proposal.outcome",
    "rule.breaker_tripped",
    "rule.breaker_reset",
    "task.priority-changed",
)
DEFAULT_EVENTS: tuple[str, ...] = EVENTS[:10]
ALL_SEVERITIES = tuple(Severity)

# What a message calls each event in its summary line.
_LABELS = {
    "proposal.created": "new proposal(s)",
    "proposal.approved": "approved",
    "proposal.rejected": "rejected",
    "proposal.scheduled": "scheduled",
    "proposal.resolved": "resolved before anyone acted",
    "proposal.superseded": "superseded",
    "incident.opened": "incident(s) opened",
    "burst.opened": "burst(s) of one rule folded into one proposal",
    "proposal.outcome": "outcome(s) of filed tasks",
    "rule.breaker_tripped": "rule(s) set back to manual approval by their rejections",
    "control.applied": "control(s) applied",
    "control.lifted": "control(s) lifted",
    "cycle.failed": "failed review cycle(s)",
}
# The first retry waits this long (seconds), each further one twice as long.
BACKOFF_S = 1.0
_MAX_LINE = 300
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


# -- config -------------------------------------------------------------------------
# The options that belong to one type of receiver.
_TYPE_FIELDS = {
    "webhook": {"url", "token_env"},
    "slack": {"url"},
    "email": {"host", "port", "sender", "to", "starttls", "user", "password_env"},
}


class Receiver(BaseModel):
    """One ``[notify.receivers.<name>]`` table: where messages go and which events."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: Literal["webhook", "slack", "email"]
    enabled: bool = True
    # webhook and slack
    url: str | None = None
    # webhook: the environment variable holding a bearer token for it
    token_env: str | None = None
    # email
    host: str | None = None
    port: int = Field(default=25, ge=1, le=65535)
    sender: str | None = Field(default=None, alias="from")
    to: list[str] = Field(default_factory=list)
    starttls: bool = False
    user: str | None = None
    password_env: str | None = None
    # sending
    timeout: Duration = timedelta(seconds=10)
    retries: int = Field(default=3, ge=0, le=10)
    # routes
    events: list[str] = Field(default_factory=lambda: list(DEFAULT_EVENTS))
    rules: list[str] = Field(default_factory=lambda: ["*"])
    severities: list[Severity] = Field(default_factory=lambda: list(ALL_SEVERITIES))

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not any(fnmatch.fnmatchcase(e, pattern) for e in EVENTS):
                raise ValueError(f"{pattern!r} names no event; events: {', '.join(EVENTS)}")
        return value

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, value: list[str]) -> list[str]:
        from rules import REGISTRY

        for pattern in value:
            if not any(fnmatch.fnmatchcase(r, pattern) for r in REGISTRY):
                raise ValueError(f"{pattern!r} matches no rule; rules: {', '.join(REGISTRY)}")
        return value

    @model_validator(mode="after")
    def _fields_of_its_type(self) -> Receiver:
        own = _TYPE_FIELDS[self.type]
        for name in self.model_fields_set:
            other = [t for t, f in _TYPE_FIELDS.items() if name in f and t != self.type]
            if name not in own and other:
                key = "from" if name == "sender" else name
                raise ValueError(f"option '{key}' is for {' and '.join(other)} receivers")
        if self.type in ("webhook", "slack"):
            if not self.url or not re.match(r"https?://[^/\s]+", self.url):
                raise ValueError(f'a {self.type} receiver needs url = "https://..."')
            if self.type == "slack":
                register(self.url.split("://", 1)[1].partition("/")[2])  # its path is its secret
        else:
            if not self.host:
                raise ValueError('an email receiver needs host = "smtp.example.com"')
            if not self.sender or not self.to:
                raise ValueError('an email receiver needs from = "..." and to = ["..."]')
        if self.timeout <= timedelta(0):
            raise ValueError("timeout must be more than 0s")
        return self

    def wants(self, event: dict[str, Any]) -> bool:
        """Whether this receiver's routes take the event. Rules and severities filter
        only events that have one (a failed cycle has neither)."""
        if not any(fnmatch.fnmatchcase(event["action"], p) for p in self.events):
            return False
        rule = event.get("rule")
        if rule and not any(fnmatch.fnmatchcase(rule, p) for p in self.rules):
            return False
        severity = event.get("severity")
        return not severity or severity in {s.value for s in self.severities}

    def target(self) -> str:
        """Where it sends, for people (no secrets)."""
        if self.type == "email":
            return f"smtp://{self.host}:{self.port} to {', '.join(self.to)}"
        assert self.url is not None
        if self.type == "slack":
            return self.url.split("://", 1)[1].partition("/")[0] + "/***"
        return redact(self.url)


class NotifySettings(BaseModel):
    """The ``[notify]`` table (receivers are validated one by one, see config.py)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    # Failed cycles after which a message is dropped (with a log line).
    max_attempts: int = Field(default=5, ge=1)
    # The longest a cycle spends sending, retries and their waits included.
    max_seconds: Duration = timedelta(seconds=30)
    # Events listed in one message; the rest are counted.
    max_events: int = Field(default=50, ge=1, le=500)
    receivers: dict[str, Receiver] = Field(default_factory=dict)

    @field_validator("receivers")
    @classmethod
    def _names(cls, value: dict[str, Receiver]) -> dict[str, Receiver]:
        for name in value:
            if not _NAME.fullmatch(name):
                raise ValueError(f"receiver name {name!r}: use letters, digits, '-', '_', '.'")
        return value


# -- events -------------------------------------------------------------------------
@dataclass
class Batch:
    """One cycle's events, numbered for the outbox."""

    id: int
    created_at: str
    run_id: int | None
    events: list[dict[str, Any]]


def _event(row: dict[str, Any], public_url: str) -> dict[str, Any]:
    details = json.loads(row["details"]) if row.get("details") else {}
    severity = row.get("severity") or details.get("severity")
    event = {
        "id": row["id"],
        "at": row["at"],
        "action": row["action"],
        "actor": row["actor"],
        "rule": row.get("rule"),
        "kind": row.get("kind"),
        "subject": row.get("subject"),
        "severity": severity,
        "proposal_id": row.get("proposal_id"),
        "title": row.get("title") or row.get("summary"),
        "from_state": row.get("from_state"),
        "to_state": row.get("to_state"),
        "reason": row.get("reason"),
        "task_id": row.get("task_id") or details.get("task_id"),
        "url": proposal_url(public_url, row["proposal_id"])
        if row.get("proposal_id")
        else public_url,
    }
    return event


def proposal_url(public_url: str, proposal_id: int) -> str:
    """The page's link to one proposal."""
    return f"{public_url}#proposal-{proposal_id}"


def _failed_run_event(run: Any, public_url: str) -> dict[str, Any]:
    errors = "; ".join(str(e.get("error")) for e in run.errors if e.get("error"))
    return {
        "id": None,
        "at": run.finished_at or run.started_at,
        "action": "cycle.failed",
        "actor": "reviewer",
        "rule": None,
        "kind": None,
        "subject": f"run:{run.id}",
        "severity": None,
        "proposal_id": None,
        "title": f"review run {run.id} {run.status}",
        "from_state": None,
        "to_state": run.status,
        "reason": redact(errors) or None,
        "task_id": None,
        "run_id": run.id,
        "url": public_url,
    }


def collect_batch(
    state: ReviewerState, config: Config, run_id: int | None, run_start: str, at: str
) -> Batch | None:
    """Record the batch of events since the last one (None: nothing new, or another
    process took the same events). The first batch starts at ``run_start``."""
    public_url = config.reviewer.public_url
    mark = state.notify_watermark()
    if mark is None:
        mark = (state.audit_id_before(run_start), (run_id or 1) - 1)
    last_audit, last_run = state.last_audit_id(), max(run_id or 0, mark[1])
    if last_audit <= mark[0] and last_run <= mark[1]:
        return None
    batch_id = state.add_notify_batch(
        at=at, run_id=run_id, audit=(mark[0], last_audit), runs=(mark[1], last_run)
    )
    if batch_id is None:
        return None
    # Only what some receiver takes is kept: a first cycle may open thousands of findings.
    receivers = [r for r in config.notify.receivers.values() if r.enabled]
    audit = (_event(r, public_url) for r in state.audit_events(mark[0], last_audit))
    failed = (_failed_run_event(r, public_url) for r in state.failed_runs(mark[1], last_run))
    wanted = [e for e in itertools.chain(audit, failed) if any(r.wants(e) for r in receivers)]
    return Batch(id=batch_id, created_at=at, run_id=run_id, events=wanted)


# -- messages -------------------------------------------------------------------------
def idempotency_key(receiver: str, batch: Batch) -> str:
    """The same for one receiver's message of one batch, whenever it is retried."""
    digest = hashlib.sha256(f"{receiver}|{batch.id}|{batch.created_at}".encode()).hexdigest()
    return f"reviewer-{digest[:32]}"


def summary_line(events: list[dict[str, Any]]) -> str:
    counts = Counter(e["action"] for e in events)
    parts = [f"{n} {_LABELS.get(action, action)}" for action, n in counts.items()]
    return "reviewer: " + ", ".join(parts)


def event_line(e: dict[str, Any]) -> str:
    """One event in words (pipeline text is kept as data by each format)."""
    sev = f"[{e['severity']}] " if e.get("severity") else ""
    action = e["action"]
    if action.startswith("proposal.") and e.get("proposal_id") is not None:
        text = (
            f"{sev}proposal #{e['proposal_id']} {action.split('.', 1)[1]}: {e.get('title') or ''}"
        )
        if e.get("actor") and e["actor"] != "reviewer":
            text += f" (by {e['actor']})"
        if action == "proposal.scheduled" and e.get("task_id"):
            text += f" as task {e['task_id']}"
    elif action == "cycle.failed":
        text = str(e.get("title"))
    else:
        who = f" by {e['actor']}" if e.get("actor") else ""
        scope = " ".join(str(x) for x in (e.get("rule"), e.get("subject")) if x)
        text = f"{sev}{action}{who}: {scope}".rstrip(": ")
    if e.get("reason") and action not in ("proposal.created",):
        text += f" — {e['reason']}"
    text = " ".join(text.split())
    return text if len(text) <= _MAX_LINE else text[: _MAX_LINE - 1] + "…"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render(
    name: str,
    receiver: Receiver,
    batch: Batch,
    events: list[dict[str, Any]],
    *,
    public_url: str,
    max_events: int,
    key: str,
) -> str:
    """The message for one receiver as stored in the outbox (JSON text)."""
    shown, more = events[:max_events], len(events) - max_events
    summary = summary_line(events)
    if receiver.type == "webhook":
        return json.dumps(
            {
                "version": 1,
                "receiver": name,
                "batch_id": batch.id,
                "run_id": batch.run_id,
                "idempotency_key": key,
                "created_at": batch.created_at,
                "summary": summary,
                "url": public_url,
                "counts": dict(Counter(e["action"] for e in events)),
                "events": shown,
                "more": max(more, 0),
            }
        )
    lines = [event_line(e) for e in shown]
    if receiver.type == "slack":
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_slack_escape(summary)}*"}}
        ]
        # A section holds at most 3000 characters: events go in as few sections as fit.
        chunk: list[str] = []
        for e, line in zip(shown, lines, strict=True):
            item = f"• <{e['url']}|{_slack_escape(line)}>"
            if sum(len(c) + 1 for c in chunk) + len(item) > 2900:
                blocks.append(
                    {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(chunk)}}
                )
                chunk = []
            chunk.append(item)
        if chunk:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(chunk)}})
        tail = f"and {more} more · " if more > 0 else ""
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"{tail}<{public_url}|open the review page>"}
                ],
            }
        )
        return json.dumps({"text": f"{summary} — {public_url}", "blocks": blocks[:50]})
    body = [summary, "", *(f"- {line}\n  {e['url']}" for e, line in zip(shown, lines, strict=True))]
    if more > 0:
        body.append(f"... and {more} more")
    body += ["", f"Review page: {public_url}"]
    return json.dumps({"subject": summary, "body": "\n".join(body) + "\n"})


# -- sending -------------------------------------------------------------------------
class DeliveryError(Exception):
    """A message could not be delivered this time; the text says why."""


class _Transient(Exception):
    """Worth another try: a 429/5xx answer or a lost connection."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - (now or utcnow())).total_seconds())


def _retrying(
    attempt: Callable[[float], str],
    receiver: Receiver,
    deadline: float,
    stop: threading.Event,
) -> str:
    """Run ``attempt(timeout)`` until it succeeds, retrying ``_Transient`` failures
    ``receiver.retries`` times with backoff (or ``Retry-After``) while time is left."""
    error = "not tried"
    for n in range(receiver.retries + 1):
        left = deadline - time.monotonic()
        if left <= 0.05 or stop.is_set():
            raise DeliveryError(f"{error}; no sending time left this cycle")
        try:
            return attempt(min(receiver.timeout.total_seconds(), left))
        except _Transient as exc:
            error = str(exc)
            wait = exc.retry_after if exc.retry_after is not None else BACKOFF_S * 2**n
        if n == receiver.retries:
            break
        if wait > deadline - time.monotonic():
            raise DeliveryError(
                f"{error}; the next try (in {wait:g}s) is past this cycle's sending time"
            )
        if stop.wait(wait):
            raise DeliveryError(f"{error}; stopped while waiting to retry")
    raise DeliveryError(f"{error} (tried {receiver.retries + 1} times)")


def _post(
    receiver: Receiver, payload: str, key: str, deadline: float, stop: threading.Event
) -> str:
    import os

    import httpx

    assert receiver.url is not None
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": key,
        "User-Agent": "reviewer-notify/1",
    }
    if receiver.token_env:
        token = os.environ.get(receiver.token_env)
        if not token:
            raise DeliveryError(f"${receiver.token_env} (token_env) is not set")
        register(token)
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(follow_redirects=False) as client:

        def attempt(timeout: float) -> str:
            try:
                resp = client.post(
                    receiver.url or "", content=payload.encode(), headers=headers, timeout=timeout
                )
            except httpx.HTTPError as exc:
                raise _Transient(redact(f"{type(exc).__name__}: {exc}")) from None
            if resp.is_success:
                return f"HTTP {resp.status_code}"
            text = redact(" ".join(resp.text.split())[:200])
            error = f"HTTP {resp.status_code} {resp.reason_phrase}: {text}".rstrip(": ")
            if resp.status_code == 429 or resp.status_code >= 500:
                raise _Transient(error, parse_retry_after(resp.headers.get("Retry-After")))
            raise DeliveryError(error)

        return _retrying(attempt, receiver, deadline, stop)


def _mail(
    receiver: Receiver, payload: str, key: str, deadline: float, stop: threading.Event
) -> str:
    import os
    import smtplib
    import ssl
    from email.message import EmailMessage
    from email.utils import formatdate

    content = json.loads(payload)
    msg = EmailMessage()
    msg["Subject"] = content["subject"]
    msg["From"] = receiver.sender
    msg["To"] = ", ".join(receiver.to)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<{key}@reviewer>"  # the same for every retry: mail tools dedupe it
    msg["Idempotency-Key"] = key
    msg.set_content(content["body"])
    password = None
    if receiver.password_env:
        password = os.environ.get(receiver.password_env)
        if not password:
            raise DeliveryError(f"${receiver.password_env} (password_env) is not set")
        register(password)

    def attempt(timeout: float) -> str:
        try:
            with smtplib.SMTP(receiver.host or "", receiver.port, timeout=timeout) as smtp:
                if receiver.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if receiver.user:
                    smtp.login(receiver.user, password or "")
                smtp.send_message(msg)
        except smtplib.SMTPResponseException as exc:
            error = redact(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}")
            if 400 <= exc.smtp_code < 500:
                raise _Transient(error) from None
            raise DeliveryError(error) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise _Transient(redact(f"{type(exc).__name__}: {exc}")) from None
        return f"mailed to {len(receiver.to)} recipient(s)"

    return _retrying(attempt, receiver, deadline, stop)


def send(
    receiver: Receiver, payload: str, key: str, deadline: float, stop: threading.Event | None = None
) -> str:
    """Deliver one stored message; returns what the other side said, or raises
    ``DeliveryError``."""
    stop = stop or threading.Event()
    if receiver.type == "email":
        return _mail(receiver, payload, key, deadline, stop)
    return _post(receiver, payload, key, deadline, stop)


# -- the cycle hook -------------------------------------------------------------------
def after_cycle(
    config: Config,
    state: ReviewerState,
    result: ReviewResult,
    *,
    clock: Callable[[], datetime] = utcnow,
    stop: threading.Event | None = None,
) -> list[dict[str, Any]]:
    """Queue this cycle's messages and send what waits; never raises.

    Called after the cycle's results are committed. Returns one entry per message
    tried: ``receiver``, ``batch_id``, ``status`` (sent, failed, dropped), ``detail``.
    """
    settings = config.notify
    receivers = {n: r for n, r in settings.receivers.items() if r.enabled}
    if not receivers:
        return []
    try:
        queue(config, state, result, clock)
    except Exception as exc:  # the outbox could not be written: the events wait for the next batch
        log.warning("could not queue this cycle's notifications: %s", redact(str(exc)))
    try:
        return deliver(config, state, clock=clock, stop=stop)
    except Exception as exc:
        log.warning("could not send notifications: %s", redact(str(exc)))
        return []


def queue(
    config: Config, state: ReviewerState, result: ReviewResult, clock: Callable[[], datetime]
) -> Batch | None:
    """Make this cycle's batch and each receiver's message of it, in one transaction."""
    settings = config.notify
    now = clock()
    at = fmt_ts(now)
    # The first batch ever starts with this cycle (its rows are stamped with its `now`).
    started = now - timedelta(milliseconds=result.duration_ms) - timedelta(seconds=1)
    run_start = min(result.now, fmt_ts(started))
    with state.store.transaction():
        batch = collect_batch(state, config, result.run_id, run_start, at)
        if batch is None:
            return None
        for name, receiver in settings.receivers.items():
            if not receiver.enabled:
                continue
            events = [e for e in batch.events if receiver.wants(e)]
            if not events:
                continue
            key = idempotency_key(name, batch)
            payload = render(
                name,
                receiver,
                batch,
                events,
                public_url=config.reviewer.public_url,
                max_events=settings.max_events,
                key=key,
            )
            state.queue_notification(
                batch_id=batch.id,
                receiver=name,
                events=len(events),
                payload=payload,
                key=key,
                at=at,
            )
    return batch


def deliver(
    config: Config,
    state: ReviewerState,
    *,
    clock: Callable[[], datetime] = utcnow,
    stop: threading.Event | None = None,
) -> list[dict[str, Any]]:
    """Send every receiver's waiting messages, oldest first, within ``max_seconds``.

    A receiver's first failure ends its turn this cycle (its later messages wait);
    a message that has failed ``max_attempts`` cycles is dropped."""
    settings = config.notify
    deadline = time.monotonic() + settings.max_seconds.total_seconds()
    receivers = {n: r for n, r in settings.receivers.items() if r.enabled}
    with state.store.transaction():
        gone = state.drop_notifications_of(list(settings.receivers), fmt_ts(clock()))
    if gone:
        log.warning("dropped %d waiting notification(s) of receivers no longer configured", gone)
    report: list[dict[str, Any]] = []
    for name, receiver in receivers.items():
        for row in state.pending_notifications(name):
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                return report
            entry = {"receiver": name, "batch_id": row["batch_id"], "events": row["events"]}
            try:
                detail = send(receiver, row["payload"], row["idempotency_key"], deadline, stop)
            except DeliveryError as exc:
                error = redact(str(exc))
                failures = row["failures"] + 1
                drop = failures >= settings.max_attempts
                with state.store.transaction():
                    state.notification_failed(row["id"], error, fmt_ts(clock()), drop=drop)
                if drop:
                    log.error(
                        "notification to %s dropped after %d failed cycles: %s",
                        name,
                        failures,
                        error,
                        extra={"receiver": name, "batch_id": row["batch_id"]},
                    )
                else:
                    log.warning(
                        "notification to %s failed (%d of %d); retried next cycle: %s",
                        name,
                        failures,
                        settings.max_attempts,
                        error,
                        extra={"receiver": name, "batch_id": row["batch_id"]},
                    )
                report.append({**entry, "status": "dropped" if drop else "failed", "detail": error})
                break
            with state.store.transaction():
                state.notification_sent(row["id"], fmt_ts(clock()))
            log.info(
                "notification sent to %s",
                name,
                extra={"receiver": name, "batch_id": row["batch_id"], "events": row["events"]},
            )
            report.append({**entry, "status": "sent", "detail": detail})
    return report


# -- for people -----------------------------------------------------------------------
def send_test(config: Config, name: str) -> str:
    """Send a test message to one receiver now (not through the outbox); returns what
    the receiver said, raises ``DeliveryError`` or ``KeyError`` (no such receiver)."""
    receiver = config.notify.receivers[name]
    now = fmt_ts(utcnow())
    url = config.reviewer.public_url
    event = {
        "id": None,
        "at": now,
        "action": "notify.test",
        "actor": "reviewer",
        "rule": None,
        "subject": f"receiver:{name}",
        "severity": None,
        "proposal_id": None,
        "title": "test message",
        "reason": f"a test of receiver {name} from `reviewer notify test`",
        "url": url,
    }
    batch = Batch(id=0, created_at=now, run_id=None, events=[event])
    key = "reviewer-test-" + hashlib.sha256(f"{name}|{time.time_ns()}".encode()).hexdigest()[:24]
    payload = render(name, receiver, batch, [event], public_url=url, max_events=1, key=key)
    deadline = time.monotonic() + config.notify.max_seconds.total_seconds()
    return send(receiver, payload, key, deadline)


def notification_status(app: App) -> list[dict[str, Any]]:
    """Each configured receiver's delivery state, for the page and ``notify status``.

    ``receiver``, ``type``, ``target``, ``enabled``, ``state`` (``ok``, ``failing``,
    ``idle``: nothing sent yet, ``disabled``), ``sent``, ``pending``, ``dropped``,
    ``failures`` (failed cycles over all its messages), ``last_sent_at``,
    ``last_error`` and ``last_error_at``."""
    counts = {r["receiver"]: r for r in app.state.notification_counts()}
    errors = app.state.notification_last_errors()
    out = []
    for name, receiver in app.config.notify.receivers.items():
        c = counts.get(name, {})
        err = errors.get(name)
        if not receiver.enabled:
            status = "disabled"
        elif c.get("failing"):
            status = "failing"
        elif c.get("sent"):
            status = "ok"
        else:
            status = "idle"
        out.append(
            {
                "receiver": name,
                "type": receiver.type,
                "target": receiver.target(),
                "enabled": receiver.enabled,
                "state": status,
                "events": list(receiver.events),
                "sent": int(c.get("sent") or 0),
                "pending": int(c.get("pending") or 0),
                "dropped": int(c.get("dropped") or 0),
                "failures": int(c.get("failures") or 0),
                "last_sent_at": c.get("last_sent_at"),
                "last_error": err["last_error"] if err else None,
                "last_error_at": err["updated_at"] if err else None,
            }
        )
    return out
