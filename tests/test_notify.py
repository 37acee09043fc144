"""Notifications against real local servers: an HTTP receiver that answers 429 with
Retry-After, 503s and goes down, and a small SMTP sink.

One message per receiver per cycle, retries that honour Retry-After, a stable
Idempotency-Key, a failing receiver that neither fails nor blocks the cycle and is
retried next cycle then dropped, and routes by event, rule and severity.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
import time
import types
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest

import reviewer.notify as notify
import rules
from reviewer.app import App
from reviewer.cli import cli
from reviewer.config import ConfigError, load_config
from reviewer.engine import Engine
from reviewer.notify import notification_status, parse_retry_after
from reviewer.promexport import registry_for
from rules import Finding
from rules.contract import RuleOptions
from store import Store
from store.sqlite import SQLiteStore
from store.timeutil import fmt_ts, parse_ts
from tests.support import make_config, task_rows

T0 = parse_ts("2026-03-01T00:00:00Z")
NOW = T0 + timedelta(days=10)


# -- a real HTTP receiver ---------------------------------------------------------------
class Hook:
    """A webhook receiver on 127.0.0.1: answers from a script, then 200; records each
    request (monotonic time, path, headers, JSON body). ``down()`` closes the port."""

    def __init__(self, port: int = 0):
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, str]]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.requests.append(
                    {
                        "t": time.monotonic(),
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": json.loads(body),
                    }
                )
                status, headers = hook.script.pop(0) if hook.script else (200, {})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self, path: str | None = None) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests if path is None or r["path"] == path]

    def down(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.down()


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "BACKOFF_S", 0.05)


class Clock:
    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def stale(task_id: str, priority: str = "high", title: str | None = None) -> dict[str, Any]:
    return {
        "id": task_id,
        "title": title or f"Task {task_id}",
        "priority": priority,
        "created_at": fmt_ts(T0),
    }


def engine_for(store: Store, notify_cfg: dict[str, Any], **reviewer: Any) -> Engine:
    only = {r: {"enabled": False} for r in rules.REGISTRY if r != "stale-queue"}
    cfg = make_config(
        {
            "reviewer": {"public_url": "https://reviewer.example/", **reviewer},
            "rules": only,
            "notify": notify_cfg,
        }
    )
    return Engine(cfg, store, clock=Clock(NOW))


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": url, **extra}


def outbox(store: Store) -> list[dict[str, Any]]:
    return store.query("SELECT * FROM reviewer_notify_outbox ORDER BY id")


# -- grouping ------------------------------------------------------------------------
def test_one_message_per_cycle_and_decisions_between_cycles_come_next_cycle(
    store: SQLiteStore, hook: Hook
) -> None:
    store.upsert_tasks(task_rows([stale("t1"), stale("t2"), stale("t3")]))
    engine = engine_for(store, {"receivers": {"ops": webhook(hook.url())}})

    first = engine.review(NOW)
    assert first.status == "ok" and len(first.proposals) == 3
    (msg,) = hook.bodies()  # three proposals, one message
    assert [e["action"] for e in msg["events"]] == ["proposal.created"] * 3
    ids = sorted(p["id"] for p in first.proposals)
    assert sorted(e["url"] for e in msg["events"]) == [
        f"https://reviewer.example/#proposal-{i}" for i in ids
    ]
    assert msg["url"] == "https://reviewer.example/" and msg["counts"] == {"proposal.created": 3}
    assert "3 new proposal(s)" in msg["summary"]
    assert hook.requests[0]["headers"]["Idempotency-Key"] == msg["idempotency_key"]

    engine.review(NOW + timedelta(hours=1))  # nothing new happened: nothing sent
    assert len(hook.requests) == 1

    engine.approve(ids[0], by="alice", reason="yes")  # between cycles (CLI or API)
    engine.reject(ids[1], by="bob", reason="not now")
    assert len(hook.requests) == 1
    engine.review(NOW + timedelta(hours=2))
    assert len(hook.requests) == 2
    events = hook.bodies()[1]["events"]
    assert [(e["action"], e["actor"], e["proposal_id"]) for e in events] == [
        ("proposal.approved", "alice", ids[0]),
        ("proposal.scheduled", "alice", ids[0]),
        ("proposal.rejected", "bob", ids[1]),
    ]
    assert events[2]["reason"] == "not now"
    assert hook.bodies()[1]["idempotency_key"] != msg["idempotency_key"]
    assert [r["status"] for r in outbox(store)] == ["sent", "sent"]


def test_no_receivers_writes_nothing(store: SQLiteStore) -> None:
    store.upsert_tasks(task_rows([stale("t1")]))
    engine_for(store, {}).review(NOW)
    assert store.query("SELECT COUNT(*) AS n FROM reviewer_notify_batches")[0]["n"] == 0


# -- retries -------------------------------------------------------------------------
def test_429_retry_after_is_honoured_with_the_same_idempotency_key(
    store: SQLiteStore, hook: Hook, fast_backoff: None
) -> None:
    hook.script = [(429, {"Retry-After": "1"})]
    store.upsert_tasks(task_rows([stale("t1")]))
    result = engine_for(store, {"receivers": {"ops": webhook(hook.url())}}).review(NOW)
    assert result.status == "ok"
    first, second = hook.requests
    assert second["t"] - first["t"] >= 0.95  # waited as told
    key = first["headers"]["Idempotency-Key"]
    assert key.startswith("reviewer-") and second["headers"]["Idempotency-Key"] == key
    assert first["body"] == second["body"]
    (row,) = outbox(store)
    assert row["status"] == "sent" and row["failures"] == 0 and row["idempotency_key"] == key


def test_503s_back_off_exponentially(
    store: SQLiteStore, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "BACKOFF_S", 0.2)
    hook.script = [(503, {}), (503, {})]
    store.upsert_tasks(task_rows([stale("t1")]))
    engine_for(store, {"receivers": {"ops": webhook(hook.url())}}).review(NOW)
    t = [r["t"] for r in hook.requests]
    assert len(t) == 3
    assert t[1] - t[0] >= 0.19 and t[2] - t[1] >= 0.39  # 0.2 s, then 0.4 s
    assert len({r["headers"]["Idempotency-Key"] for r in hook.requests}) == 1
    assert outbox(store)[0]["status"] == "sent"


def test_a_retry_after_beyond_the_sending_time_defers_to_the_next_cycle(
    store: SQLiteStore, hook: Hook
) -> None:
    hook.script = [(429, {"Retry-After": "3600"})]
    store.upsert_tasks(task_rows([stale("t1")]))
    engine = engine_for(store, {"max_seconds": "5s", "receivers": {"ops": webhook(hook.url())}})
    started = time.monotonic()
    result = engine.review(NOW)
    assert time.monotonic() - started < 4 and result.status == "ok"
    (row,) = outbox(store)
    assert row["status"] == "pending" and row["failures"] == 1
    assert "HTTP 429" in row["last_error"] and "sending time" in row["last_error"]
    engine.review(NOW + timedelta(hours=1))  # the next cycle sends it, same key
    assert outbox(store)[0]["status"] == "sent"
    keys = {r["headers"]["Idempotency-Key"] for r in hook.requests}
    assert keys == {row["idempotency_key"]} and len(hook.requests) == 2


def test_a_4xx_is_not_retried_within_the_cycle(store: SQLiteStore, hook: Hook) -> None:
    hook.script = [(400, {})]
    store.upsert_tasks(task_rows([stale("t1")]))
    engine_for(store, {"receivers": {"ops": webhook(hook.url())}}).review(NOW)
    assert len(hook.requests) == 1
    assert outbox(store)[0]["last_error"].startswith("HTTP 400")


def test_retry_after_as_an_http_date() -> None:
    now = parse_ts("2026-03-01T12:00:00Z")
    assert parse_retry_after("Sun, 01 Mar 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


# -- a failing receiver ------------------------------------------------------------------
def test_a_receiver_that_goes_down_never_fails_the_cycle_is_retried_then_dropped(
    store: SQLiteStore, fast_backoff: None, caplog: pytest.LogCaptureFixture
) -> None:
    hook = Hook()
    port = hook.port
    cfg = {"max_attempts": 2, "receivers": {"ops": webhook(hook.url())}}
    engine = engine_for(store, cfg)
    store.upsert_tasks(task_rows([stale("t1")]))
    assert engine.review(NOW).status == "ok"
    assert len(hook.requests) == 1

    hook.down()
    store.upsert_tasks(task_rows([stale("t2")]))
    started = time.monotonic()
    result = engine.review(NOW + timedelta(hours=1))
    assert result.status == "ok" and time.monotonic() - started < 5
    assert [p["subject"] for p in result.proposals] == ["t2"]  # the cycle's work is saved
    second = outbox(store)[1]
    assert second["status"] == "pending" and second["failures"] == 1
    assert "ConnectError" in second["last_error"]

    with App(engine.config, store, clock=engine.clock) as app:
        (status,) = notification_status(app)
    assert status["state"] == "failing" and status["sent"] == 1 and status["pending"] == 1
    assert "ConnectError" in status["last_error"] and status["target"] == hook.url()

    # Back up on the same port: the waiting message goes first, then this cycle's.
    hook = Hook(port)
    store.upsert_tasks(task_rows([stale("t3")]))
    engine.review(NOW + timedelta(hours=2))
    bodies = hook.bodies()
    assert [[e["subject"] for e in b["events"]] for b in bodies] == [["t2"], ["t3"]]
    assert hook.requests[0]["headers"]["Idempotency-Key"] == second["idempotency_key"]
    hook.down()

    # Down for good: after max_attempts failed cycles the message is dropped, with a log line.
    store.upsert_tasks(task_rows([stale("t4")]))
    with caplog.at_level(logging.WARNING, logger="reviewer.notify"):
        engine.review(NOW + timedelta(hours=3))
        engine.review(NOW + timedelta(hours=4))
    last = outbox(store)[-1]
    assert last["status"] == "dropped" and last["failures"] == 2
    assert any("dropped after 2 failed cycles" in r.getMessage() for r in caplog.records)
    audit = store.query("SELECT * FROM reviewer_audit WHERE action = 'notification.dropped'")
    assert len(audit) == 1 and audit[0]["subject"] == "receiver:ops"

    with App(engine.config, store, clock=engine.clock) as app:
        metrics = generate_latest(registry_for(app)).decode()
    assert 'reviewer_notifications_total{receiver="ops",status="sent"} 3.0' in metrics
    assert 'reviewer_notifications_total{receiver="ops",status="dropped"} 1.0' in metrics
    assert 'reviewer_notification_failures_total{receiver="ops"} 3.0' in metrics
    assert 'reviewer_notifications_pending{receiver="ops"} 0.0' in metrics


def test_a_slow_receiver_is_cut_off_at_the_cycle_budget(store: SQLiteStore) -> None:
    # A listening socket that never answers: each try waits out its timeout.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        cfg = {"max_seconds": "2s", "receivers": {"slow": webhook(url, timeout="1s")}}
        store.upsert_tasks(task_rows([stale("t1")]))
        started = time.monotonic()
        result = engine_for(store, cfg).review(NOW)
        assert result.status == "ok" and time.monotonic() - started < 3.5
        assert outbox(store)[0]["status"] == "pending"
    finally:
        silent.close()


# -- routes ---------------------------------------------------------------------------
class _BoomOptions(RuleOptions):
    pass


def _boom(options: Any, view: Any) -> Iterator[Finding]:
    raise RuntimeError("exploded on bad data")
    yield  # pragma: no cover


def test_routes_filter_by_event_rule_and_severity(
    store: SQLiteStore, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    boom = types.SimpleNamespace(ID="boom", Options=_BoomOptions, DEFAULTS={}, check=_boom)
    monkeypatch.setitem(rules.REGISTRY, "boom", boom)
    receivers = {
        "all": webhook(hook.url("/all")),
        "critical": webhook(hook.url("/critical"), severities=["critical"]),
        "decisions": webhook(hook.url("/decisions"), events=["proposal.approved"]),
        "flaky": webhook(hook.url("/flaky"), rules=["flaky-*"], events=["proposal.*"]),
        "failures": webhook(hook.url("/failures"), events=["cycle.failed"]),
    }
    only = {r: {"enabled": False} for r in rules.REGISTRY if r not in ("stale-queue", "boom")}
    cfg = make_config(
        {
            "rules": {**only, "stale-queue": {"severity": "warning"}},
            "notify": {"receivers": receivers},
        }
    )
    engine = Engine(cfg, store, clock=Clock(NOW))
    store.upsert_tasks(task_rows([stale("t1")]))
    result = engine.review(NOW)
    assert result.status == "partial"
    engine.approve(result.proposals[0]["id"], by="alice")
    engine.review(NOW + timedelta(hours=1))

    actions = {
        p: [[e["action"] for e in b["events"]] for b in hook.bodies(f"/{p}")] for p in receivers
    }
    assert actions["all"] == [
        ["proposal.created", "cycle.failed"],
        ["proposal.approved", "proposal.scheduled", "cycle.failed"],
    ]
    # A warning does not reach the critical receiver; a failed cycle has no severity.
    assert actions["critical"] == [["cycle.failed"], ["cycle.failed"]]
    assert actions["decisions"] == [["proposal.approved"]]
    assert actions["flaky"] == []
    assert actions["failures"] == [["cycle.failed"], ["cycle.failed"]]
    failed = hook.bodies("/failures")[0]["events"][0]
    assert "exploded on bad data" in failed["reason"] and failed["to_state"] == "partial"


# -- formats ------------------------------------------------------------------------------
def test_slack_message_keeps_pipeline_text_as_data(store: SQLiteStore, hook: Hook) -> None:
    store.upsert_tasks(task_rows([stale("t1", title="<!channel> & <https://evil|click>")]))
    slack = {"type": "slack", "url": hook.url("/services/T0/B0/secret")}
    engine_for(store, {"receivers": {"team": slack}}).review(NOW)
    (body,) = hook.bodies()
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith("reviewer: 1 new proposal(s)")
    text = json.dumps(body["blocks"])
    assert "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;" in text
    assert "<!channel>" not in text
    assert "<https://reviewer.example/#proposal-1|" in text
    assert body["blocks"][-1]["type"] == "context"


class SMTPSink:
    """Just enough SMTP to take mail: EHLO, MAIL, RCPT, DATA, QUIT."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                def say(line: str) -> None:
                    self.wfile.write(line.encode() + b"\r\n")

                say("220 sink ready")
                sender, rcpts = "", []
                while line := self.rfile.readline():
                    verb = line.decode().strip().split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        say("250 sink")
                    elif verb == "MAIL":
                        sender = line.decode().split(":", 1)[1].strip()
                        say("250 ok")
                    elif verb == "RCPT":
                        rcpts.append(line.decode().split(":", 1)[1].strip())
                        say("250 ok")
                    elif verb == "DATA":
                        say("354 go on")
                        data = b""
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data += chunk
                        sink.messages.append((sender, rcpts, message_from_bytes(data)))
                        say("250 queued")
                    elif verb == "QUIT":
                        say("221 bye")
                        return
                    else:
                        say("250 ok")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_email_is_one_mail_per_cycle_with_a_stable_message_id(store: SQLiteStore) -> None:
    sink = SMTPSink()
    try:
        mail = {
            "type": "email",
            "host": "127.0.0.1",
            "port": sink.port,
            "from": "reviewer@example.com",
            "to": ["ops@example.com", "lead@example.com"],
        }
        store.upsert_tasks(task_rows([stale("t1"), stale("t2")]))
        engine_for(store, {"receivers": {"mail": mail}}).review(NOW)
        (sender, rcpts, msg) = sink.messages[0]
        assert len(sink.messages) == 1
        assert sender == "<reviewer@example.com>"
        assert rcpts == ["<ops@example.com>", "<lead@example.com>"]
        assert msg["Subject"] == "reviewer: 2 new proposal(s)"
        key = outbox(store)[0]["idempotency_key"]
        assert msg["Message-ID"] == f"<{key}@reviewer>"
        body = msg.get_payload()
        assert "Task t1" in body and "https://reviewer.example/#proposal-1" in body
    finally:
        sink.close()


# -- config and the command line ----------------------------------------------------------
def test_bad_receiver_config_names_file_table_and_option(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[notify.receivers.ops]\ntype = "webhook"\nurl = "https://x/"\ntimeout = "5s"\n'
        'events = ["proposal.aproved"]\n'
    )
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert str(err.value).startswith(f"{cfg}: [notify.receivers.ops] option 'events'")
    assert "'proposal.aproved' names no event" in str(err.value)
    cfg.write_text('[notify.receivers.ops]\ntype = "slack"\nurl = "https://x/"\nhost = "smtp"\n')
    with pytest.raises(ConfigError, match=r"\[notify.receivers.ops\] option 'host' is for email"):
        load_config(cfg)
    cfg.write_text('[notify.receivers.mail]\ntype = "email"\nhost = "smtp"\n')
    with pytest.raises(
        ConfigError, match=r"\[notify.receivers.mail\] an email receiver needs from"
    ):
        load_config(cfg)


def test_notify_test_command(tmp_path: Path, hook: Hook) -> None:
    cfg = tmp_path / "config.toml"
    down = Hook()
    down.down()
    cfg.write_text(
        f'[reviewer]\nstore = "sqlite:///pipeline.db"\n'
        f'[notify.receivers.ops]\ntype = "webhook"\nurl = "{hook.url()}"\n'
        f'[notify.receivers.gone]\ntype = "webhook"\nurl = "{down.url()}"\nretries = 0\n'
    )
    runner = CliRunner()
    ok = runner.invoke(cli, ["--config", str(cfg), "notify", "test", "ops"])
    assert ok.exit_code == 0, ok.output
    assert "sent a test message to ops" in ok.stdout
    (body,) = hook.bodies()
    assert body["events"][0]["action"] == "notify.test"
    bad = runner.invoke(cli, ["--config", str(cfg), "notify", "test", "gone"])
    assert bad.exit_code == 1 and "test message to gone" in bad.stderr
    assert "ConnectError" in bad.stderr and "Traceback" not in bad.stderr
    unknown = runner.invoke(cli, ["--config", str(cfg), "notify", "test", "nope"])
    assert unknown.exit_code == 2 and "receivers: ops, gone" in unknown.stderr
    status = runner.invoke(cli, ["--config", str(cfg), "notify", "status", "--json"])
    assert status.exit_code == 0
    assert [s["receiver"] for s in json.loads(status.stdout)] == ["ops", "gone"]


def test_the_readme_example_is_a_valid_config() -> None:
    import re
    import tomllib

    from reviewer.config import config_from_dict

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Notifications", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```toml\n(.*?)```", section, re.S)
    assert block is not None
    cfg = config_from_dict(tomllib.loads(block.group(1)))
    assert {n: r.type for n, r in cfg.notify.receivers.items()} == {
        "ops": "webhook",
        "team": "slack",
        "lead": "email",
    }
    assert cfg.notify.receivers["team"].target() == "hooks.slack.com/***"


@pytest.mark.postgres
def test_on_postgres_batches_outbox_and_status(hook: Hook, fast_backoff: None) -> None:
    from store import open_store
    from tests.pg import fresh_schema_url

    down = Hook()
    down.down()
    with fresh_schema_url() as url:
        store = open_store(url)
        try:
            store.upsert_tasks(task_rows([stale("t1"), stale("t2")]))
            receivers = {"ops": webhook(hook.url()), "gone": webhook(down.url(), retries=0)}
            engine = engine_for(store, {"max_attempts": 2, "receivers": receivers})
            first = engine.review(NOW)
            assert first.status == "ok"
            engine.approve(first.proposals[0]["id"], by="alice")
            engine.review(NOW + timedelta(hours=1))
            engine.review(NOW + timedelta(hours=2))  # nothing new: nothing queued
            assert [[e["action"] for e in b["events"]] for b in hook.bodies()] == [
                ["proposal.created", "proposal.created"],
                ["proposal.approved", "proposal.scheduled"],
            ]
            with App(engine.config, store, clock=engine.clock) as app:
                status = {s["receiver"]: s for s in notification_status(app)}
                metrics = generate_latest(registry_for(app)).decode()
            assert status["ops"]["state"] == "ok" and status["ops"]["sent"] == 2
            # gone: its first message failed twice (dropped), its second failed once.
            assert (status["gone"]["dropped"], status["gone"]["pending"]) == (1, 1)
            assert status["gone"]["state"] == "failing"
            assert 'reviewer_notifications_total{receiver="gone",status="dropped"} 1.0' in metrics
        finally:
            store.close()


def test_a_message_lists_max_events_and_counts_the_rest(store: SQLiteStore, hook: Hook) -> None:
    store.upsert_tasks(task_rows([stale(f"t{i}") for i in range(5)]))
    engine_for(store, {"max_events": 2, "receivers": {"ops": webhook(hook.url())}}).review(NOW)
    (body,) = hook.bodies()
    assert len(body["events"]) == 2 and body["more"] == 3
    assert body["counts"] == {"proposal.created": 5}


def test_a_broken_outbox_or_renderer_does_not_fail_the_cycle(
    store: SQLiteStore, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("renderer bug")

    monkeypatch.setattr(notify, "render", broken)
    store.upsert_tasks(task_rows([stale("t1")]))
    engine = engine_for(store, {"receivers": {"ops": webhook(hook.url())}})
    result = engine.review(NOW)
    assert result.status == "ok" and len(result.proposals) == 1
    assert hook.requests == [] and outbox(store) == []
    # The batch rolled back with its messages: the events come with the next cycle.
    monkeypatch.undo()
    engine.review(NOW + timedelta(hours=1))
    assert [e["subject"] for e in hook.bodies()[0]["events"]] == ["t1"]


def test_an_unset_password_variable_is_a_message(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_TEST_SMTP_PASSWORD", raising=False)
    mail = {
        "type": "email",
        "host": "127.0.0.1",
        "from": "r@example.com",
        "to": ["o@example.com"],
        "user": "r",
        "password_env": "NOTIFY_TEST_SMTP_PASSWORD",
    }
    store.upsert_tasks(task_rows([stale("t1")]))
    assert engine_for(store, {"receivers": {"mail": mail}}).review(NOW).status == "ok"
    assert outbox(store)[0]["last_error"] == "$NOTIFY_TEST_SMTP_PASSWORD (password_env) is not set"
