"""Replaying history: when would each finding first have fired, and cleared?

The backtest runs every enabled rule as of each step between two instants,
exactly as ``review --once --now`` would, but keeps no state: it only
records, per fingerprint, the first step it fired at and the first step after
that it no longer fired. Users tune thresholds on their own history with it
before turning a rule on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from reviewer.engine import Engine, ReviewResult
from store.timeutil import fmt_ts


def step_count(start: datetime, end: datetime, step: timedelta) -> int:
    """How many reviews a backtest from ``start`` to ``end`` replays."""
    return int((end - start) / step) + 1 if end >= start else 0


def backtest(
    engine: Engine,
    start: datetime,
    end: datetime,
    step: timedelta,
    on_step: Callable[[datetime], None] | None = None,
) -> list[dict[str, Any]]:
    """One entry per finding: the finding as first seen, plus ``first_fired_at``,
    ``last_fired_at``, ``cleared_at`` (None while still firing at ``end``),
    ``fired_steps`` and ``fired_at`` (the step each episode of firing began at).
    ``on_step(at)`` is called after each replayed review (a progress display)."""
    seen: dict[str, dict[str, Any]] = {}
    at = start
    while at <= end:
        scratch = ReviewResult(run_id=None, now=fmt_ts(at))
        findings, failed = engine.run_rules(at, scratch)
        firing = set()
        for f in findings:
            firing.add(f.fingerprint)
            entry = seen.get(f.fingerprint)
            if entry is None:
                entry = {
                    **f.public(),
                    "first_fired_at": fmt_ts(at),
                    "cleared_at": None,
                    "fired_steps": 0,
                    "fired_at": [fmt_ts(at)],
                }
                seen[f.fingerprint] = entry
            elif entry["cleared_at"] is not None:
                entry["cleared_at"] = None  # fired again: cleared only if it stays clear
                entry["refired"] = entry.get("refired", 0) + 1
                entry["fired_at"].append(fmt_ts(at))
            entry["fired_steps"] += 1
            entry["last_fired_at"] = fmt_ts(at)
        for fp, entry in seen.items():
            if fp not in firing and entry["cleared_at"] is None and entry["rule"] not in failed:
                entry["cleared_at"] = fmt_ts(at)
        if on_step is not None:
            on_step(at)
        at += step
    return sorted(seen.values(), key=lambda e: (e["first_fired_at"], e["rule"], e["subject"]))
