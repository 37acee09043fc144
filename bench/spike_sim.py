"""A simulated pipeline for judging usage-spikes: generator and scorer (a bench tool).

A seeded pipeline with daily and weekly rhythm, Poisson task counts, log-normal
token use per task and injected trouble (runaway tasks, retry storms of several
hours, one-hour bursts that must not fire). ``score_detection`` replays it hour
by hour like ``reviewer backtest`` and scores the findings against what was
injected. Used by ``tests/test_usage_spikes.py`` and ``bench/usage_spikes.py``;
the demo's history generator is ``reviewer.sim``, a different purpose (one
labelled history of every problem), so this family stays out of the wheel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from rules import usage_spikes
from store.sqlite import SQLiteStore
from store.timeutil import fmt_ts, parse_ts
from tests.support import make_store, metric_rows

START = parse_ts("2026-02-02T00:00:00Z")  # a Monday
HOUR = timedelta(hours=1)
MODELS = {"claude": (1.0, 12e-6), "gpt": (0.6, 8e-6), "mini": (0.3, 1e-6)}  # weight, $/token
TYPES = {"impl": (1.0, 40000.0), "spec": (0.4, 15000.0), "review": (0.6, 8000.0)}
EXECUTORS = ("e1", "e2")


def _rate(at: datetime, base: float) -> float:
    """Tasks per hour: a daytime hump, quieter weekends, a Monday-morning rush."""
    day = 0.35 + 0.65 * math.exp(-(((at.hour - 14) / 4.5) ** 2))
    week = 0.45 if at.weekday() >= 5 else 1.0
    rush = 1.8 if at.weekday() == 0 and 9 <= at.hour < 12 else 1.0
    return base * day * week * rush


@dataclass
class Pipeline:
    days: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    outliers: dict[str, datetime] = field(default_factory=dict)
    storms: list[tuple[str, datetime, datetime]] = field(default_factory=list)  # model, from, to
    bursts: list[tuple[str, datetime]] = field(default_factory=list)


def simulate(days: int, base_rate: float, seed: int = 7) -> Pipeline:
    rng = np.random.default_rng(seed)
    p = Pipeline(days)
    hours = days * 24
    # Trouble goes into the last week, where the review replays.
    first = hours - 7 * 24
    storm_starts = sorted(rng.choice(np.arange(first, hours - 12, 17), size=5, replace=False))
    models = list(MODELS)
    storm_hours: dict[int, str] = {}
    for n, h in enumerate(storm_starts):
        model, length = models[n % len(models)], int(rng.integers(3, 7))
        p.storms.append((model, START + h * HOUR, START + (h + length) * HOUR))
        storm_hours.update({h + k: model for k in range(length)})
    burst_hours = {
        int(h): models[i % 3]
        for i, h in enumerate(rng.choice(np.arange(first, hours), size=8, replace=False))
        if int(h) not in storm_hours and int(h) - 1 not in storm_hours
    }
    p.bursts = [(m, START + h * HOUR) for h, m in burst_hours.items()]
    serial = 0
    for h in range(hours):
        at = START + h * HOUR
        for model, (mw, price) in MODELS.items():
            for tt, (tw, tokens) in TYPES.items():
                lam = _rate(at, base_rate * mw * tw)
                extra = 1.0
                if storm_hours.get(h) == model or burst_hours.get(h) == model:
                    extra = 6.0  # a retry storm: many more ordinary tasks
                for _ in range(int(rng.poisson(lam * extra))):
                    serial += 1
                    used = float(rng.lognormal(math.log(tokens), 0.35))
                    task_id = f"t{serial}"
                    if h >= first and rng.random() < 0.0015:
                        used *= float(rng.uniform(8, 25))  # a runaway task
                        p.outliers[task_id] = at
                    at_task = at + timedelta(seconds=int(rng.integers(0, 3600)))
                    p.rows.append(
                        {
                            "task_id": task_id,
                            "task_type": tt,
                            "model": model,
                            "executor": EXECUTORS[serial % 2],
                            "status": "completed",
                            "duration_seconds": 60.0,
                            "created_at": fmt_ts(at_task),
                            "tokens_in": int(used * 0.85),
                            "tokens_out": int(used * 0.15),
                            # Some pipelines do not report cost for every task.
                            "cost_usd": None if serial % 11 == 0 else round(used * price, 4),
                        }
                    )
    return p


def history_store(p: Pipeline) -> SQLiteStore:
    store = make_store()
    store.upsert_metrics(metric_rows(p.rows))
    return store


def clean_rows(p: Pipeline) -> list[dict[str, Any]]:
    """The simulated rows without anything injected: no runaway tasks, storms or bursts."""
    injected_hours = {(m, fmt_ts(a)[:13]) for m, a in p.bursts}
    return [
        r
        for r in p.rows
        if r["task_id"] not in p.outliers
        and not any(r["model"] == m and a <= parse_ts(r["created_at"]) < b for m, a, b in p.storms)
        and (r["model"], r["created_at"][:13]) not in injected_hours
    ]


def _budgets(p: Pipeline) -> dict[str, float]:
    """Per-model daily budgets a little above a normal weekday's spend."""
    spend: dict[tuple[str, str], float] = {}
    for r in clean_rows(p):
        if r["cost_usd"] is not None:
            key = (r["model"], r["created_at"][:10])
            spend[key] = spend.get(key, 0.0) + r["cost_usd"]
    return {
        f"model:{m}": round(
            1.25 * float(np.median([v for (n, _), v in spend.items() if n == m])), 2
        )
        for m in MODELS
    }


def _spent_today(rows: list[dict[str, Any]], now: datetime) -> dict[str, float]:
    day, until = fmt_ts(now)[:10], fmt_ts(now)
    out: dict[str, float] = {}
    for r in rows:
        at = r["created_at"]
        if at[:10] == day and at <= until and r["cost_usd"] is not None:
            out[f"model:{r['model']}"] = out.get(f"model:{r['model']}", 0.0) + r["cost_usd"]
    return out


def score_detection(
    p: Pipeline, store: SQLiteStore, options: usage_spikes.Options, budgets: bool = False
) -> dict[str, float]:
    """Replay the last week every 2 h; true/false positives and due/found per kind.

    A storm is due from its K-th hour until it ends; a finding for its model or
    any executor or task type (scopes it spills into) during it, or within the
    M normal hours that close it, is a true positive. A runaway task counts once.
    With ``budgets``, per-model budgets are set and every review's budget
    findings are checked against the spend recomputed from the rows.
    """
    if budgets:
        options = options.model_copy(update={"budgets": _budgets(p)})
    end = START + timedelta(days=p.days)
    reviews = [
        end - timedelta(days=7) + k * HOUR + timedelta(minutes=5) for k in range(0, 7 * 24, 2)
    ]
    c = dict.fromkeys(
        [
            f"{kind}_{x}"
            for kind in ("outlier", "spike", "budget")
            for x in ("tp", "fp", "due", "hit")
        ],
        0,
    )
    found_tasks: set[str] = set()
    wrong_tasks: set[str] = set()
    k, m = options.spike_open_after, options.spike_close_after
    for now in reviews:
        findings = list(usage_spikes.check(options, store.view(fmt_ts(now))))
        last_complete = now.replace(minute=0) - HOUR
        for f in findings:
            if f.kind == "task-outlier":
                tid = f.subject.removeprefix("task:")
                (found_tasks if tid in p.outliers else wrong_tasks).add(tid)
            elif f.kind == "spike":
                ok = any(
                    f.subject in (f"model:{s}", "executor:e1", "executor:e2")
                    or f.subject.startswith("task_type:")
                    for s, a, b in p.storms
                    if a + (k - 1) * HOUR <= last_complete < b + m * HOUR
                )
                c["spike_tp"] += ok
                c["spike_fp"] += not ok
        subjects = {f.subject for f in findings if f.kind == "spike"}
        for s, a, b in p.storms:
            if a + (k - 1) * HOUR <= last_complete < b:
                c["spike_due"] += 1
                c["spike_hit"] += f"model:{s}" in subjects
        if budgets:
            spent = _spent_today(p.rows, now)
            over = {
                scope for scope, limit in options.budgets.items() if spent.get(scope, 0) > limit
            }
            fired = {f.subject for f in findings if f.kind == "budget"}
            c["budget_tp"] += len(fired & over)
            c["budget_fp"] += len(fired - over)
            c["budget_due"] += len(over)
            c["budget_hit"] += len(fired & over)
    c["outlier_tp"] = c["outlier_hit"] = len(found_tasks)
    c["outlier_fp"] = len(wrong_tasks)
    c["outlier_due"] = len(p.outliers)
    return c


def detection_rates(c: dict[str, float]) -> dict[str, float]:
    return {
        f"{kind}_{name}": num / max(den, 1)
        for kind in ("outlier", "spike", "budget")
        for name, num, den in (
            ("precision", c[f"{kind}_tp"], c[f"{kind}_tp"] + c[f"{kind}_fp"]),
            ("recall", c[f"{kind}_hit"], c[f"{kind}_due"]),
        )
    }
