"""The labeller of simulated histories: when a documented definition held, judged from the records.

``reviewer.sim.simulate()`` (the one generator, in the wheel for ``reviewer demo``)
labels what it injected at a known subject and time, and records as plain
``injections`` the faults whose effect must be judged from the generated
records: the executor it broke (every scope past the circuit breaker is a
label), the phase whose workers went down (labelled while it is stalled), the
runaway loop and the timeout fault (labelled while usage clearly spikes).
``label()`` judges those over the record and returns the history with its full
labels, the same as ``simulate()`` returned before the split. It keeps its own
figures and never reads a rule's Options, so tuning a rule does not move the
labels it is judged on. This module is a development tool: ``bench/`` is not in
the wheel. Tests import it with ``bench`` on ``sys.path`` (tests/conftest.py).

    from sim_labels import simulate_labelled
    labels = simulate_labelled(store, workspace=tmp, seed=0)
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from datetime import UTC, datetime
from typing import Any

import numpy as np

from reviewer.sim import Label, Labels, simulate
from store.base import Store

# A usage spike is labelled from the hour it is this far above normal: 100,000 tokens or
# $2 (the definition the README documents). The labeller keeps its own figures: it never
# reads a rule's options, so tuning a rule does not move the labels it is judged on.
SPIKE_FLOORS = (100000.0, 2.0)

_FINAL = ("completed", "failed", "cancelled")
_RUN_STATES = (*_FINAL, "running")


def _secs(p: Any, ts: str) -> float:
    return (
        datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) - p.start
    ).total_seconds()


def simulate_labelled(store: Store, **kwargs: Any) -> Labels:
    """``simulate()`` with this labeller's stalled-phase check, then ``label()``."""
    return label(simulate(store, stall_check=stalls, **kwargs))


def stalls(p: Any, rows: list[dict[str, Any]], phase: str, t0: float) -> bool:
    """Whether an outage of ``phase`` from ``t0`` stalls it at some point."""
    return bool(_stall_spans(p, rows, phase, t0))


def label(history: Labels) -> Labels:
    """``history`` with the labels judged from its injections added (sorted as before)."""
    record = history.record
    if record is None:
        raise ValueError("label() needs a history simulate() has just made (with its record)")
    p = record.pipeline
    labels = list(history.labels)
    for inj in history.injections:
        at = _secs(p, inj.at)
        if inj.kind == "spike":
            dim, name = inj.subject.split(":", 1)
            spans = _fault_spike(p, record.spike_metrics, dim, name, at)
            if spans:
                labels.append(_span_label(p, inj.rule, inj.kind, inj.subject, spans))
        elif inj.kind in _JUDGES:
            for subject, spans in _JUDGES[inj.kind](p, record, _secs(p, inj.at)):
                labels.append(_span_label(p, inj.rule, inj.kind, subject, spans))
        elif inj.kind == "stalled-phase":
            spans = _stall_spans(p, record.task_rows, inj.subject.split(":", 1)[1], at)
            if spans:
                labels.append(_span_label(p, inj.rule, inj.kind, inj.subject, spans))
    # every executor, model or task type the faults drove to failing half its runs
    if record.breaker_since is not None:
        for scope, open_spans in _failing_scopes(p, record.breaker_since):
            labels.append(_span_label(p, "stuck-phases", "error-rate", scope, open_spans))
    labels.sort(key=lambda x: (x.rule, x.kind, x.subject))
    return dataclasses.replace(history, labels=labels)


# When a problem held: [from, until) in simulation seconds, until None while it lasts.
_Spans = list[tuple[float, float | None]]


def _mark(spans: _Spans, at: float, holds: bool) -> None:
    """Record the state at ``at``: open a span when the problem starts, close it when it ends."""
    is_open = bool(spans) and spans[-1][1] is None
    if holds and not is_open:
        spans.append((at, None))
    elif not holds and is_open:
        spans[-1] = (spans[-1][0], at)


def _span_label(p: Any, rule: str, kind: str, subject: str, spans: _Spans) -> Label:
    episodes = tuple((p.ts(a), None if b is None else p.ts(min(b, p.horizon))) for a, b in spans)
    return Label(rule, kind, subject, episodes[0][0], episodes)


def _fault_spike(
    p: Any, metrics: list[dict[str, Any]], dim: str, name: str, since: float
) -> _Spans:
    """When the injected faults clearly spiked the hourly usage of one scope: spans.

    The runaway loop spikes ``task_type:impl`` and the timeout fault
    ``task_type:test`` (runs killed at the time limit use more, and each forced
    retry is a whole extra run). Each run carries the share of its usage the faults
    caused (``_fault_share``). The scope is labelled when, for two hours in a row,
    that excess alone (tokens, or cost) is at least twice the scope's usual usage
    for that hour of day (so three times the usual in all) and at least the rule's
    documented hourly floor (``spike_min_tokens``, ``spike_min_cost_usd``), and the
    hour's whole usage is above anything that clock hour (or its neighbours)
    reached on any earlier day of the same kind: ordinary bursts reach several
    times the usual too, so only usage beyond what the scope has ever done at that
    time is clearly a spike. The usual usage is the median of that clock hour over
    the earlier days of the same kind (weekdays or weekend days) before ``since``.
    The models and executors that ran the extra work rise too, but the rule reports
    an event once, under the scope that explains it, so they are not labelled.
    A span runs from the first of two such hours to the end of the third hour in a
    row that is not (the rule's hysteresis), ``None`` while it lasts.
    """
    floors = SPIKE_FLOORS
    day0 = int(since // 86400)
    weekend = p.at(day0 * 86400.0).weekday() >= 5
    days = [d for d in range(day0) if (p.at(d * 86400.0).weekday() >= 5) == weekend]
    start = day0 * 86400.0
    hours = [start + i * 3600.0 for i in range(int((p.horizon - start) // 3600))]
    usual: list[dict[tuple[int, int], float]] = [{}, {}]  # measure -> (day, hour) -> usage
    total = [[0.0] * len(hours), [0.0] * len(hours)]
    excess = [[0.0] * len(hours), [0.0] * len(hours)]
    for m in metrics:
        if str(m[dim]) != name:
            continue
        values = (float(m["tokens_in"] + m["tokens_out"]), float(m["cost_usd"]))
        if m["_t"] < start:
            cell = (int(m["_t"] // 86400), int(m["_t"] % 86400 // 3600))
            for j, v in enumerate(values):
                usual[j][cell] = usual[j].get(cell, 0.0) + v
            continue
        i = int((m["_t"] - start) // 3600)
        if i >= len(hours):
            continue
        share = float(m.get("_fault_share", 0.0))
        for j, v in enumerate(values):
            total[j][i] += v
            excess[j][i] += share * v
    flags = [False] * len(hours)
    for j in range(2):
        for i, extra in enumerate(excess[j]):
            hod = int(hours[i] % 86400 // 3600)
            normal = float(np.median([usual[j].get((d, hod), 0.0) for d in days])) if days else 0.0
            envelope = max(
                (usual[j].get((d, (hod + k) % 24), 0.0) for d in days for k in (-1, 0, 1)),
                default=0.0,
            )
            clear = extra >= 2 * normal and extra >= floors[j] and total[j][i] > envelope
            flags[i] = flags[i] or clear
    spans: _Spans = []
    run = calm = 0
    for i, flag in enumerate(flags):
        run, calm = (run + 1, 0) if flag else (0, calm + 1)
        is_open = bool(spans) and spans[-1][1] is None
        if not is_open and run >= 2:
            spans.append((hours[i - 1], None))
        elif is_open and calm >= 3:
            spans[-1] = (spans[-1][0], hours[i] + 3600.0)
    return spans


_BREAKER_SCOPES = ("executor", "model", "task_type")


def _tally(
    cells: dict[tuple[str, ...], list[int]], dim: int, name: str, skip: tuple[set[str], ...]
) -> tuple[int, int]:
    """Runs and failures of one scope (``dim`` indexes ``_BREAKER_SCOPES``), leaving out
    cells of the scopes in ``skip`` taken in the other dimensions."""
    n = f = 0
    for cell, (r, x) in cells.items():
        if cell[dim] != name:
            continue
        if any(cell[d] in skip[d] for d in range(len(cell)) if d != dim):
            continue
        n, f = n + r, f + x
    return n, f


def _failing_scopes(p: Any, since: float) -> list[tuple[str, _Spans]]:
    """Executors, models and task types past the circuit breaker, as the rule documents it.

    Past it: more than half of at least 10 runs in the last 6h failed. The worst
    scope is judged first and the others without its runs, so a broken executor
    is not also counted as the models it ran, and a task type that times out
    everywhere not as every executor and model that ran it. Judged at every
    quarter hour (the daemon's default schedule): the rate also rises when old
    successes leave the window, between two runs. Returns each scope's spans
    past the breaker, ``[from, until)``, ``until`` None while it lasts.
    """
    window, min_runs, limit, tick = 6 * 3600.0, 10, 0.5, 900.0
    runs = sorted(p.metrics, key=lambda m: m["_t"])
    spans: dict[str, _Spans] = {}
    lo = hi = 0
    at = math.ceil(since / tick) * tick
    none: tuple[set[str], ...] = tuple(set() for _ in _BREAKER_SCOPES)
    while at <= p.horizon:
        while hi < len(runs) and runs[hi]["_t"] <= at:
            hi += 1
        while lo < hi and runs[lo]["_t"] < at - window:  # the rule counts [at - 6h, at]
            lo += 1
        cells: dict[tuple[str, ...], list[int]] = {}  # (executor, model, type) -> [runs, fails]
        for m in runs[lo:hi]:
            cell = cells.setdefault(tuple(str(m[d]) for d in _BREAKER_SCOPES), [0, 0])
            cell[0] += 1
            cell[1] += m["status"] == "failed"
        names = sorted({(dim, key[dim]) for key in cells for dim in range(len(_BREAKER_SCOPES))})
        raw = {key: _tally(cells, key[0], key[1], none) for key in names}
        taken: tuple[set[str], ...] = tuple(set() for _ in _BREAKER_SCOPES)
        ranked = sorted(raw.items(), key=lambda kv: (-kv[1][1] / max(kv[1][0], 1), -kv[1][1]))
        now_failing = set()
        for (dim, name), (n, f) in ranked:
            if n < min_runs or f <= limit * n:
                continue
            own_n, own_f = _tally(cells, dim, name, taken)
            if own_n >= min_runs and own_f > limit * own_n:
                taken[dim].add(name)
                now_failing.add(f"{_BREAKER_SCOPES[dim]}:{name}")
        for scope in now_failing | set(spans):
            _mark(spans.setdefault(scope, []), at, scope in now_failing)
        at += tick
    return sorted(spans.items())


def _left_at(row: dict[str, Any]) -> str:
    return str(row["finished_at"] or row["updated_at"] or row["created_at"])


def _state_at(row: dict[str, Any], now: str) -> str | None:
    """A task row's status at ``now``, rebuilt from its timestamps as the store's view does."""
    if row["created_at"] > now:
        return None
    status = str(row["status"])
    if status in _FINAL and _left_at(row) <= now:
        return status
    if status in _RUN_STATES:
        began = row["started_at"] or row["updated_at"] or row["created_at"]
        return "running" if began <= now else "pending"
    return status


def _stall_spans(p: Any, rows: list[dict[str, Any]], phase: str, t0: float) -> _Spans:
    """When (to the minute) from ``t0`` ``phase`` is stalled: ``[from, until)`` spans.

    Stalled: at least 3 open tasks (running, or pending and ready: every
    dependency completed), none of the phase's tasks finished in the last 6h, the
    oldest open task open the whole 6h, and a phase with only pending work must
    have finished a task before.
    """
    window, min_open = 6 * 3600.0, 3
    by_id = {r["id"]: r for r in rows}
    mine = [r for r in rows if r["phase"] == phase]
    oldest = p.ts(t0 - window - 86400.0)
    live = [r for r in mine if r["status"] not in _FINAL or _left_at(r) >= oldest]
    ever = min((_left_at(r) for r in mine if r["status"] in _FINAL), default=None)
    spans: _Spans = []
    t = t0
    while t <= p.horizon:
        now, cut = p.ts(t), p.ts(t - window)
        running, ready, opened, outflow = 0, 0, [], False
        for r in live:
            state = _state_at(r, now)
            if state in _FINAL:
                outflow = outflow or _left_at(r) >= cut
            elif state == "running":
                running += 1
                opened.append(str(r["started_at"] or r["updated_at"] or r["created_at"]))
            elif state == "pending":
                deps = [by_id.get(d) for d in json.loads(r["depends_on"] or "[]")]
                if all(d is not None and _state_at(d, now) == "completed" for d in deps):
                    ready += 1
                    opened.append(max([r["created_at"], *(_left_at(d) for d in deps if d)]))
        served = running > 0 or (ever is not None and ever <= now)
        stalled = not outflow and running + ready >= min_open and served
        _mark(spans, t, stalled and t - _secs(p, min(opened)) >= window)
        t += 60.0
    return spans


# -- the kinds of the rules that review how the pipeline is run, judged at every quarter
# hour of the last day and a bit (the replayed window), as the README documents them.
_JUDGE_FROM = 30 * 3600.0
_TICK = 900.0
BLOCKED_GRACE = 3600.0  # a failed or cancelled dependency this recent may still be retried
ACCEPTANCE_TYPES = ("impl", "test")
ACCEPTANCE_MARKERS = ("acceptance", "definition of done", "done when", "- [ ]", "- [x]")
ACCEPTANCE_MIN_AGE = 3600.0
REVIEW_WINDOW = 14 * 86400.0
MAX_UNDOCUMENTED_SHARE = 0.2
MIN_REVIEWS = 5
DECISIONS = ("pass", "fail", "changes-requested")
FAILURE_WINDOW = 14 * 86400.0
FAILURE_MIN_COUNT, FAILURE_MIN_TASKS, FAILURE_MAX_CHANCE = 3, 2, 0.001
ONE_EXECUTOR_SHARE = 0.8


def _ticks(p: Any) -> list[float]:
    first = math.ceil((p.horizon - _JUDGE_FROM) / _TICK) * _TICK
    return [first + k * _TICK for k in range(int((p.horizon - first) // _TICK) + 1)]


def _judge(p: Any, holds: Any) -> list[tuple[str, _Spans]]:
    """Spans per subject of ``holds(now) -> set of subjects`` over the judged ticks."""
    spans: dict[str, _Spans] = {}
    for t in _ticks(p):
        now = holds(p.ts(t))
        for subject in now | set(spans):
            _mark(spans.setdefault(subject, []), t, subject in now)
    return sorted(spans.items())


def _open(row: dict[str, Any], now: str) -> bool:
    return _state_at(row, now) in ("pending", "running")


def _judge_blocked(p: Any, record: Any, _at: float) -> list[tuple[str, _Spans]]:
    """An open task waiting on one that failed or was cancelled at least an hour ago."""
    rows = record.task_rows
    by_id = {r["id"]: r for r in rows}
    waiting = [r for r in rows if json.loads(r["depends_on"] or "[]")]

    def holds(now: str) -> set[str]:
        cut = p.ts(_secs(p, now) - BLOCKED_GRACE)
        out = set()
        for r in waiting:
            if not _open(r, now):
                continue
            for d in json.loads(r["depends_on"]):
                dep = by_id.get(d)
                dead = dep is not None and _state_at(dep, now) in ("failed", "cancelled")
                if dead and dep is not None and _left_at(dep) <= cut:
                    out.add(r["id"])
        return out

    return _judge(p, holds)


def _judge_no_acceptance(p: Any, record: Any, _at: float) -> list[tuple[str, _Spans]]:
    """A pending impl or test item an hour old, with no spec and no acceptance marker."""
    bare = [
        r
        for r in record.task_rows
        if r["task_type"] in ACCEPTANCE_TYPES
        and not r["spec"]
        and not any(m in (r["description"] or "").lower() for m in ACCEPTANCE_MARKERS)
    ]

    def holds(now: str) -> set[str]:
        cut = p.ts(_secs(p, now) - ACCEPTANCE_MIN_AGE)
        return {r["id"] for r in bare if _state_at(r, now) == "pending" and r["created_at"] <= cut}

    return _judge(p, holds)


def _decision(row: dict[str, Any]) -> tuple[bool, bool]:
    extra = json.loads(row["extra"]) if row.get("extra") else {}
    decided = extra.get("review_decision") in DECISIONS
    return decided, decided and bool(str(extra.get("review_rationale") or "").strip())


def _judge_no_decision(p: Any, record: Any, _at: float) -> list[tuple[str, _Spans]]:
    """More than a fifth of the (at least 5) reviews completed in 14 days lack a decision
    or a rationale, in a pipeline some of whose reviews record one."""
    reviews = sorted(
        (str(r["finished_at"]), *_decision(r))
        for r in record.task_rows
        if r["task_type"] == "review" and r["status"] == "completed" and r["finished_at"]
    )

    def holds(now: str) -> set[str]:
        since = p.ts(_secs(p, now) - REVIEW_WINDOW)
        seen = [(d, full) for f, d, full in reviews if since <= f <= now]
        if len(seen) < MIN_REVIEWS or not any(d for d, _ in seen):
            return set()
        bad = sum(1 for _, full in seen if not full)
        return {"task_type:review"} if bad > MAX_UNDOCUMENTED_SHARE * len(seen) else set()

    return _judge(p, holds)


_SIG_SUBS = (
    (re.compile(r"\d{4}-\d\d-\d\d[T ][\d:.]+Z?"), "<ts>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I), "<uuid>"),
    (re.compile(r"\w+://\S+"), "<url>"),
    (re.compile(r"(?:[\w.-]*/)+[\w.-]+"), "<path>"),
    (re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{7,40}\b", re.I), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)


def signature(error: str) -> str:
    """The line that says what went wrong, its variable parts replaced by placeholders."""
    lines = [x.strip() for x in error.strip().splitlines() if x.strip()]
    if not lines:
        return ""
    line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
    for pattern, repl in _SIG_SUBS:
        line = pattern.sub(repl, line)
    return line


def _tail(n: int, k: int, q: float) -> float:
    """P(X >= k) for X ~ Binomial(n, q)."""
    return sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(k, n + 1))


def _judge_failure_signature(p: Any, record: Any, _at: float) -> list[tuple[str, _Spans]]:
    """Task types with an error signature failing unusually often, as the README defines it."""
    fails = sorted(
        (m["_t"], str(m["task_type"]), signature(str(m["error"])), m["task_id"], m["executor"])
        for m in p.metrics
        if m["status"] == "failed" and m.get("error")
    )
    runs = sorted((m["_t"], str(m["task_type"]), str(m["executor"])) for m in p.metrics)

    def holds(now: str) -> set[str]:
        t = _secs(p, now)
        seen = [f for f in fails if t - FAILURE_WINDOW <= f[0] <= t]
        per_type: dict[str, int] = {}
        groups: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        for f in seen:
            per_type[f[1]] = per_type.get(f[1], 0) + 1
            groups.setdefault((f[1], f[2]), []).append(f)
        executors: dict[str, set[str]] = {}
        for r in runs:
            if t - FAILURE_WINDOW <= r[0] <= t:
                executors.setdefault(r[1], set()).add(r[2])
        judged = {
            key: g
            for key, g in groups.items()
            if len(g) >= FAILURE_MIN_COUNT and len({f[3] for f in g}) >= FAILURE_MIN_TASKS
        }
        out = set()
        for (kind, sig), g in judged.items():
            top = max(sum(1 for f in g if f[4] == e) for e in {f[4] for f in g})
            if top >= ONE_EXECUTOR_SHARE * len(g) and len(executors.get(kind, ())) > 1:
                continue  # one executor failing: stuck-phases reports it
            others = len(seen) - per_type[kind]
            others_sig = sum(len(v) for (k, s), v in groups.items() if s == sig and k != kind)
            q = (others_sig + 1) / (others + 2)
            if _tail(per_type[kind], len(g), q) * len(judged) <= FAILURE_MAX_CHANCE:
                out.add(f"task_type:{kind}")
        return out

    return _judge(p, holds)


_JUDGES: dict[str, Any] = {
    "blocked": _judge_blocked,
    "no-acceptance": _judge_no_acceptance,
    "no-decision": _judge_no_decision,
    "failure-signature": _judge_failure_signature,
}
