"""The precision ledger: per rule, what the reviewer proposed and whether it helped.

``ledger(app)`` is what ``reviewer report --json``, ``GET /api/report`` and the
review page show: per rule the findings, proposals, approvals (by a person),
tasks filed on ``auto``, rejections with the reasons people gave, the outcomes
of filed tasks (``fixed``, ``not-fixed``, ``regressed``, ``abandoned``), the
median time from proposal to the end of a task that fixed its finding, the
breaker, and for noisy rules a tuning hint. Counts come from SQL aggregates
(``ReviewerState.ledger_rows``); only the hints replay history.

A tuning hint: a rule with at least ``HINT_MIN_DECISIONS`` decisions of which
``HINT_RATE`` or more were rejections, or at least ``HINT_MIN_DECISIONS`` judged
outcomes of which ``HINT_RATE`` or more did not hold (not-fixed or regressed),
gets a suggestion for the option it declares as its main threshold (the rule
module's ``TUNING = {"option": ..., "quieter": "higher" | "lower"}``): the value
one step (x1.5) quieter, and what ``reviewer backtest`` says that would have done
over the last ``HINT_WINDOW`` of the store's history, at ``HINT_STEP``.

The JSON: ``now`` (the last review's instant), ``settings``, ``totals`` (the
counts summed), ``breakers`` (rules whose breaker is tripped) and ``rules``, one
object per rule: ``rule``, ``enabled``, ``approval`` (configured),
``effective_approval`` (``manual`` while the breaker holds an ``auto`` rule), the
counts ``findings proposals approvals auto rejections fixed not_fixed regressed
abandoned awaiting``, ``rejection_reasons`` ([{reason, n}]), ``rejection_rate``
and ``not_fixed_rate`` (null without data), ``median_time_to_fix`` ("2h") and
``median_time_to_fix_seconds``, ``recent_rejections`` (what the breaker counts),
``breaker`` ({tripped_at, rejections, reason, reset} or null) and ``hint``
({option, direction, current, suggested, why, backtest{...}}, or {option, note}
when no value can be suggested, or null). Text in it (reasons) is data: escape it.
"""

from __future__ import annotations

import math
import shlex
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from reviewer.config import Config, RuleConfig
from rules import REGISTRY
from store import Approval, Store
from store.state import ReviewerState
from store.timeutil import fmt_duration, fmt_ts, parse_ts

if TYPE_CHECKING:
    from reviewer.app import App

HINT_MIN_DECISIONS = 3
HINT_RATE = 0.5
HINT_WINDOW = timedelta(days=7)
HINT_STEP = timedelta(hours=12)
HINT_FACTOR = 1.5

_COUNTS = (
    "findings",
    "proposals",
    "approvals",
    "auto",
    "rejections",
    "fixed",
    "not_fixed",
    "regressed",
    "abandoned",
    "awaiting",
)


def ledger(app: App, *, hints: bool = True) -> dict[str, Any]:
    """The report of an opened reviewer, JSON-ready (as ``GET /api/report`` serves it)."""
    state = ReviewerState(app.store)
    latest = state.latest_now()
    # As of the last review: the store's own history, not the wall clock.
    now = parse_ts(latest) if latest else app.clock()
    return build_ledger(app.config, app.store, now, hints=hints)


def build_ledger(
    config: Config, store: Store, now: datetime, *, hints: bool = True
) -> dict[str, Any]:
    """The ledger as of ``now`` (see the module docstring)."""
    state = ReviewerState(store)
    settings = config.reviewer
    rows = state.ledger_rows()
    reasons = state.rejection_reasons()
    tripped = state.tripped_breakers()
    recent = state.rejections_since(fmt_ts(now - settings.breaker_window))
    out_rules: list[dict[str, Any]] = []
    for rule_id in [*REGISTRY, *sorted(set(rows) - set(REGISTRY))]:
        row = rows.get(rule_id, {})
        entry: dict[str, Any] = {"rule": rule_id}
        entry.update({k: int(row.get(k) or 0) for k in _COUNTS})
        rule_cfg = config.rules.get(rule_id)
        approval = rule_cfg.settings.approval if rule_cfg else None
        breaker = tripped.get(rule_id)
        effective = approval
        if breaker is not None and approval == Approval.auto:
            effective = Approval.manual
        decisions = entry["approvals"] + entry["rejections"]
        judged = entry["fixed"] + entry["not_fixed"] + entry["regressed"]
        median = row.get("median_fix_seconds")
        entry.update(
            enabled=bool(rule_cfg and rule_cfg.settings.enabled),
            approval=approval.value if approval else None,
            effective_approval=effective.value if effective else None,
            rejection_reasons=reasons.get(rule_id, []),
            rejection_rate=_rate(entry["rejections"], decisions),
            not_fixed_rate=_rate(entry["not_fixed"] + entry["regressed"], judged),
            median_time_to_fix_seconds=round(float(median)) if median is not None else None,
            median_time_to_fix=(
                fmt_duration(timedelta(seconds=round(float(median))))
                if median is not None
                else None
            ),
            recent_rejections=recent.get(rule_id, 0),
            breaker=(
                {
                    "tripped_at": breaker["tripped_at"],
                    "rejections": breaker["rejections"],
                    "reason": breaker["reason"],
                    "reset": f"reviewer rules reset-breaker {shlex.quote(rule_id)}",
                }
                if breaker is not None
                else None
            ),
            hint=None,
        )
        if hints and rule_cfg is not None and _noisy(entry, decisions, judged):
            entry["hint"] = tuning_hint(config, store, rule_cfg, now, state)
        out_rules.append(entry)
    totals = {k: sum(r[k] for r in out_rules) for k in _COUNTS}
    return {
        "now": fmt_ts(now),
        "settings": {
            "outcome_cycles": settings.outcome_cycles,
            "outcome_clear_for": fmt_duration(settings.outcome_clear_for),
            "breaker_rejections": settings.breaker_rejections,
            "breaker_window": fmt_duration(settings.breaker_window),
        },
        "totals": totals,
        "breakers": sorted(tripped),
        "rules": out_rules,
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _noisy(entry: dict[str, Any], decisions: int, judged: int) -> bool:
    rejected = decisions >= HINT_MIN_DECISIONS and (entry["rejection_rate"] or 0) >= HINT_RATE
    unfixed = judged >= HINT_MIN_DECISIONS and (entry["not_fixed_rate"] or 0) >= HINT_RATE
    return rejected or unfixed


def tuning_hint(
    config: Config, store: Store, rule_cfg: RuleConfig, now: datetime, state: ReviewerState
) -> dict[str, Any]:
    """A quieter value of the rule's declared threshold, and its backtest on the store."""
    rule_id = rule_cfg.id
    tuning = getattr(REGISTRY.get(rule_id), "TUNING", None)
    if not tuning:
        return {"option": None, "note": f"rule {rule_id} declares no threshold to tune (TUNING)"}
    option, quieter = tuning["option"], tuning["quieter"]
    current = getattr(rule_cfg.options, option)
    suggested = step_value(current, quieter == "higher")
    base = {"option": option, "direction": quieter, "current": _show(current)}
    if suggested is None:
        return {**base, "note": f"{option} is not a number or duration; tune it by hand"}
    try:
        # Field by field, not model_dump(): options filled from other tables are excluded there.
        fields = {
            name: getattr(rule_cfg.options, name) for name in type(rule_cfg.options).model_fields
        }
        options = type(rule_cfg.options).model_validate({**fields, option: suggested})
    except ValidationError as exc:
        return {**base, "note": f"no valid quieter value: {exc.errors()[0]['msg']}"}
    start, end = now - HINT_WINDOW, now
    before = _replay(config, store, rule_cfg, start, end)
    after = _replay(config, store, rule_cfg.model_copy(update={"options": options}), start, end)
    unwanted = state.fingerprints_with_outcome(rule_id, ("not-fixed", "regressed", "abandoned"))
    quieted = set(before) - set(after)
    verb = "raise" if quieter == "higher" else "lower"
    return {
        **base,
        "suggested": _show(suggested),
        "why": (
            f"{verb} {option} from {toml_text(current)} to {toml_text(suggested)} "
            f"in [rules.{rule_id}]: its proposals are often rejected or their fixes do not hold"
        ),
        "backtest": {
            "from": fmt_ts(start),
            "to": fmt_ts(end),
            "step": fmt_duration(HINT_STEP),
            "findings_before": len(before),
            "findings_after": len(after),
            "firings_before": sum(before.values()),
            "firings_after": sum(after.values()),
            "quieted": len(quieted),
            "quieted_unwanted": len(quieted & unwanted),
            "command": (
                f"reviewer backtest --from {fmt_ts(start)} --to {fmt_ts(end)} "
                f"--step {fmt_duration(HINT_STEP)}"
            ),
        },
    }


def _replay(
    config: Config, store: Store, rule_cfg: RuleConfig, start: datetime, end: datetime
) -> dict[str, int]:
    """Fired steps per fingerprint of one rule, replayed over ``start``..``end``."""
    from reviewer.backtest import backtest
    from reviewer.engine import Engine

    rules = {
        rid: rc.model_copy(update={"settings": rc.settings.model_copy(update={"enabled": False})})
        for rid, rc in config.rules.items()
    }
    rules[rule_cfg.id] = rule_cfg.model_copy(
        update={"settings": rule_cfg.settings.model_copy(update={"enabled": True})}
    )
    engine = Engine(config.model_copy(update={"rules": rules}), store)
    return {e["fingerprint"]: e["fired_steps"] for e in backtest(engine, start, end, HINT_STEP)}


def step_value(value: Any, up: bool) -> Any:
    """One step of ``value`` (a number, duration, or a table of them) up or down."""
    if isinstance(value, bool):
        return None
    if isinstance(value, dict):
        stepped = {k: step_value(v, up) for k, v in value.items()}
        return None if not stepped or None in stepped.values() else stepped
    if isinstance(value, timedelta):
        secs = value.total_seconds() * (HINT_FACTOR if up else 1 / HINT_FACTOR)
        return timedelta(seconds=round(secs))
    if isinstance(value, int):
        return max(value + 1, math.ceil(value * HINT_FACTOR)) if up else value * 2 // 3
    if isinstance(value, float):
        return round(value * HINT_FACTOR if up else value / HINT_FACTOR, 4)
    return None


def toml_text(value: Any) -> str:
    """A value as written in config.toml (durations as strings, tables inline)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_text(v)}" for k, v in value.items()) + " }"
    if isinstance(value, timedelta):
        return f'"{fmt_duration(value)}"'
    return str(value)


def _show(value: Any) -> Any:
    if isinstance(value, timedelta):
        return fmt_duration(value)
    if isinstance(value, dict):
        return {str(k): _show(v) for k, v in value.items()}
    return value


__all__ = ["build_ledger", "ledger", "step_value", "toml_text", "tuning_hint"]
