"""Time logic read from the wall clock, with the clock frozen (freezegun): the engine's
default clock stamps decisions (reject cooldowns), silences expire by it, and the
daemon's first fire is computed from it. Never around a running scheduler."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun import freeze_time

import rules
from reviewer.daemon import first_run_time
from reviewer.engine import Engine
from store import ReviewerState
from store.sqlite import SQLiteStore
from store.timeutil import fmt_ts, parse_ts, utcnow
from tests.support import make_config, task_rows

T0 = parse_ts("2026-03-01T00:00:00Z")


def _stale_engine(store: SQLiteStore, **reviewer: Any) -> Engine:
    """An engine with only stale-queue on and the default (wall) clock."""
    off = {r: {"enabled": False} for r in rules.REGISTRY if r != "stale-queue"}
    return Engine(make_config({"reviewer": reviewer, "rules": off}), store)


def _proposal_states(store: SQLiteStore) -> list[str]:
    return [r["state"] for r in store.query("SELECT state FROM reviewer_proposals ORDER BY id")]


def test_utcnow_is_the_frozen_instant_in_whole_seconds() -> None:
    with freeze_time("2026-03-10T12:00:00.750000+00:00"):
        assert utcnow() == parse_ts("2026-03-10T12:00:00Z")
        assert fmt_ts(utcnow()) == "2026-03-10T12:00:00Z"


def test_reject_cooldown_counts_from_when_the_rejection_was_made(store: SQLiteStore) -> None:
    task = {"id": "t1", "title": "Task t1", "priority": "high", "created_at": fmt_ts(T0)}
    store.upsert_tasks(task_rows([task]))
    engine = _stale_engine(store, reject_cooldown="7d")
    with freeze_time("2026-03-11T00:00:00Z") as frozen:
        engine.review(utcnow())
        (p,) = store.query("SELECT id FROM reviewer_proposals")
        engine.reject(p["id"], by="alice", reason="on purpose")  # stamped 03-11 00:00
        frozen.move_to("2026-03-17T23:00:00Z")  # 6d23h later: still cooling down
        engine.review(utcnow())
        assert _proposal_states(store) == ["rejected"]
        frozen.move_to("2026-03-18T01:00:00Z")  # 7d1h later: it may come back
        engine.review(utcnow())
        assert _proposal_states(store) == ["rejected", "pending"]


def test_a_silence_lasts_until_its_end_on_the_clock(store: SQLiteStore) -> None:
    state = ReviewerState(store)
    with freeze_time("2026-03-10T12:00:00Z") as frozen:
        state.add_silence(
            rule="stale-queue",
            subject="t*",
            until="2026-03-10T13:00:00Z",
            by="alice",
            comment="known",
            at=fmt_ts(utcnow()),
        )
        assert [s.id for s in state.silences(fmt_ts(utcnow()))] == [1]
        frozen.tick(timedelta(minutes=59))
        assert [s.id for s in state.silences(fmt_ts(utcnow()))] == [1]
        frozen.tick(timedelta(minutes=2))
        assert state.silences(fmt_ts(utcnow())) == []


def test_first_fire_after_a_restart_follows_the_clock() -> None:
    cfg = make_config({"reviewer": {"interval": "15m"}})
    mark = parse_ts("2026-03-10T11:50:00Z")  # the last cycle; the next is due at 12:05
    with freeze_time("2026-03-10T12:00:00Z") as frozen:
        assert first_run_time(cfg, mark, utcnow()) == parse_ts("2026-03-10T12:05:00Z")
        frozen.move_to("2026-03-10T12:04:59Z")
        assert first_run_time(cfg, mark, utcnow()) == parse_ts("2026-03-10T12:05:00Z")
        frozen.move_to("2026-03-10T12:06:00Z")  # overdue: once, now
        assert first_run_time(cfg, mark, utcnow()) == parse_ts("2026-03-10T12:06:00Z")
