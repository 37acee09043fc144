"""Independent labeller for ``bench/indep_pipelines.py``: when each problem truly held.

Each kind is judged here by its documented definition (the rules' module
docstrings, as printed in the README's rule reference), in plain Python over the
generator's own records, at every instant of a grid. It never imports a rule or
reads a rule's ``Options``: the documented defaults are written out below, as a
user reading the docs would set them. Where the docs leave a choice open, the
reading taken is said in a comment.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from indep_pipelines import History, ts

H = timedelta(hours=1)
D = timedelta(days=1)

# -- documented defaults (README "Rule reference"; not read from any Options) ----------
# stale-queue
MAX_IDLE = {"critical": 1 * D, "high": 3 * D, "normal": 7 * D, "low": 30 * D}
EXEMPT = {"blocked", "on-hold", "icebox"}
DUP_MIN_SIM = 0.8
STARVED_MIN_PASSED = 5
STARVED_MIN_WAIT = 6 * H
# stuck-phases
TIMEOUT_MULT = 3.0
MIN_SAMPLES = 20
MIN_TIMEOUT = timedelta(minutes=10)
FALLBACK_TIMEOUT = 6 * H
HISTORY = 30 * D
STALL_WINDOW = 6 * H
MIN_OPEN = 3
STALL_CHANCE = 0.001
STALL_MAX_WAIT = 7 * D
TIMEOUT_WINDOW = 24 * H
TIMEOUT_BASELINE = 7 * D
TIMEOUT_PATTERNS = ["timeout", "timed out", "deadline exceeded"]
MIN_TIMEOUTS = 5
MIN_TIMEOUT_SHARE = 0.3
MIN_BASELINE_RUNS = 20
ALPHA = 0.01
MAX_FAILURES = 3
ERROR_WINDOW = 6 * H
MAX_ERROR_RATE = 0.5
MIN_RUNS = 10
# usage-spikes
OUTLIER_WINDOW = 24 * H
OUTLIER_HISTORY = 30 * D
OUTLIER_SCORE, OUTLIER_MIN_RATIO = 5.3, 4.0
OUTLIER_CLEAR_RATIO, OUTLIER_CLEAR_SCORE = 10.0, 4.0
OUTLIER_MIN_PEERS, OUTLIER_MAX_PEERS = 30, 5000
OUTLIER_MIN_TOKENS, OUTLIER_MIN_COST = 10000, 0.5
SPIKE_DIMS = ["model", "executor", "task_type"]
SPIKE_BASELINE = 28 * D
SPIKE_MIN_HISTORY = 7 * D
SPIKE_SCORE, SPIKE_MIN_RATIO, SPIKE_VOLUME_SCORE = 3.0, 3.0, 3.0
SPIKE_MIN_TOKENS, SPIKE_MIN_COST = 100000, 2.0
SPIKE_OPEN_AFTER, SPIKE_CLOSE_AFTER = 2, 3
SPIKE_LOOKBACK = 24 * H
# flaky-tests
WINDOW_RUNS, FLIP_MIN_RUNS, FLIP_RATE = 30, 8, 0.2
RECOVER_CHANCE, RECOVER_AFTER = 0.01, 7 * D
BROKEN_AFTER, BROKEN_MAX_CHANCE = 3, 0.001
SKIPPED_FOR = 14 * D
# goal-progress
STALLED_AFTER, RATE_WINDOW, RUNNING_WEIGHT = 7 * D, 14 * D, 0.25
PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2, "critical": 3}


@dataclass
class Label:
    """A problem that held, per its documented definition, over some spans."""

    rule: str
    kind: str
    subject: str
    episodes: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.rule, self.kind, self.subject)

    @property
    def started_at(self) -> str:
        return self.episodes[0][0]

    def seen_at(self, instant: str) -> bool:
        return any(a <= instant and (b is None or instant < b) for a, b in self.episodes)


KIND_RULE = {
    "stale": "stale-queue",
    "duplicate": "stale-queue",
    "starved": "stale-queue",
    "stuck": "stuck-phases",
    "stalled-phase": "stuck-phases",
    "timeout-pattern": "stuck-phases",
    "repeated-failure": "stuck-phases",
    "error-rate": "stuck-phases",
    "task-outlier": "usage-spikes",
    "spike": "usage-spikes",
    "budget": "usage-spikes",
    "flaky": "flaky-tests",
    "broken": "flaky-tests",
    "holdout": "flaky-tests",
    "stalled": "goal-progress",
    "at-risk": "goal-progress",
}
ALL_KINDS = [(rule, kind) for kind, rule in KIND_RULE.items()]


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def mad(xs: list[float], med: float) -> float:
    return statistics.median(abs(x - med) for x in xs)


# -- tasks as of an instant -------------------------------------------------------------
class Tasks:
    """The generator's tasks, indexed for "open at t" questions."""

    def __init__(self, tasks: list[dict[str, Any]], end: datetime) -> None:
        self.all = tasks
        self.by_id = {t["id"]: t for t in tasks}
        self.by_type: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        self.by_goal: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        self.many_attempts = [t for t in tasks if (t["attempts"] or 0) >= MAX_FAILURES]
        for t in tasks:
            self.by_type[t["task_type"]].append(t)
            if t.get("goal_id"):
                self.by_goal[t["goal_id"]].append(t)
        self.end = end
        self.long: list[dict[str, Any]] = []
        short = []
        for t in tasks:
            life = (t["finished_at"] or end + D) - t["created_at"]
            (self.long if life > 2 * D else short).append(t)
        short.sort(key=lambda t: t["created_at"])
        self.short = short
        self.short_created = [t["created_at"] for t in short]
        # completed run times by (task_type, phase) and by phase, sorted by finish
        self.done: dict[Any, list[tuple[datetime, float]]] = defaultdict(list)
        self.finished_by_phase: dict[str, list[datetime]] = defaultdict(list)
        for t in tasks:
            if t["finished_at"]:
                if t["phase"]:
                    self.finished_by_phase[t["phase"]].append(t["finished_at"])
                if t["status"] == "completed" and t["started_at"]:
                    run = (t["finished_at"] - t["started_at"]).total_seconds()
                    self.done[(t["task_type"], t["phase"])].append((t["finished_at"], run))
                    if t["phase"]:
                        self.done[("phase", t["phase"])].append((t["finished_at"], run))
        for v in self.done.values():
            v.sort()
        for f in self.finished_by_phase.values():
            f.sort()
        self._p95: dict[Any, float | None] = {}

    @staticmethod
    def state(t: dict[str, Any], at: datetime) -> str:
        if t["finished_at"] and t["finished_at"] <= at:
            return str(t["status"])
        if t["started_at"] and t["started_at"] <= at:
            return "running"
        return "pending"

    def open_at(self, at: datetime) -> list[dict[str, Any]]:
        lo = bisect.bisect_left(self.short_created, at - 2 * D - H)
        hi = bisect.bisect_right(self.short_created, at)
        out = [t for t in self.short[lo:hi] if self.state(t, at) in ("pending", "running")]
        out += [
            t
            for t in self.long
            if t["created_at"] <= at and self.state(t, at) in ("pending", "running")
        ]
        return out

    def ready_at(self, t: dict[str, Any], at: datetime) -> datetime | None:
        """When a task became ready (creation, or its last dependency's finish); None: blocked."""
        ready = t["created_at"]
        for d in t["depends_on"]:
            dep = self.by_id.get(d)
            if dep is None or self.state(dep, at) != "completed":
                return None
            ready = max(ready, dep["finished_at"])
        return ready

    def p95(self, group: Any, at: datetime) -> float | None:
        """p95 run time (s) of tasks of ``group`` completed within ``HISTORY`` before ``at``."""
        key = (group, at)
        if key not in self._p95:
            rows = self.done.get(group, [])
            lo = bisect.bisect_left(rows, (at - HISTORY, -1.0))
            hi = bisect.bisect_right(rows, (at, float("inf")))
            runs = [r for _, r in rows[lo:hi]]
            self._p95[key] = percentile(runs, 0.95) if len(runs) >= MIN_SAMPLES else None
        return self._p95[key]


# -- stale-queue ------------------------------------------------------------------------
_STOP = "a an the to of for in on and or with from by is be this that it as at into"
_VERBS = (
    "add remove delete fix implement refactor write review deploy roll promote triage classify "
    "reproduce specify design port repair migrate launch decide backfill update"
)
STOP, VERBS = set(str.split(_STOP)), set(str.split(_VERBS))


def _stem(w: str) -> str:
    for suf, rep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if len(w) > len(suf) + 2 and w.endswith(suf):
            return w[: -len(suf)] + rep
    return w


def words(text: str | None) -> list[str]:
    return [_stem(w) for w in re.findall(r"[a-z0-9]+", (text or "").lower()) if w not in STOP]


class Similarity:
    """TF-IDF cosine over the history's task texts (document frequencies of all tasks)."""

    def __init__(self, tasks: Iterable[dict[str, Any]]) -> None:
        df: dict[str, int] = defaultdict(int)
        n = 0
        for t in tasks:
            n += 1
            for w in set(words(t["title"]) + words(t.get("description"))):
                df[w] += 1
        self.idf = {w: math.log((1 + n) / (1 + c)) + 1 for w, c in df.items()}
        self._vecs: dict[str, dict[str, float]] = {}
        self._same: dict[tuple[str, str], bool] = {}

    def vec(self, text: str) -> dict[str, float]:
        if text not in self._vecs:
            tf: dict[str, float] = defaultdict(float)
            for w in words(text):
                tf[w] += self.idf.get(w, 1.0)
            self._vecs[text] = tf
        return self._vecs[text]

    def cos(self, a: str, b: str) -> float:
        va, vb = self.vec(a), self.vec(b)
        dot = sum(v * vb.get(w, 0.0) for w, v in va.items())
        na = math.sqrt(sum(v * v for v in va.values()))
        nb = math.sqrt(sum(v * v for v in vb.values()))
        return dot / (na * nb) if na and nb else 0.0

    def same(self, a: dict[str, Any], b: dict[str, Any]) -> bool:
        key = (a["id"], b["id"])
        if key not in self._same:
            self._same[key] = self._judge(a, b)
        return self._same[key]

    def _judge(self, a: dict[str, Any], b: dict[str, Any]) -> bool:
        ta, tb = a["title"], b["title"]
        nums = (
            {w for w in words(ta) if any(c.isdigit() for c in w)},
            {w for w in words(tb) if any(c.isdigit() for c in w)},
        )
        if nums[0] != nums[1]:
            return False
        acts = [
            next((w for w in re.findall(r"[a-z]+", x.lower()) if w in VERBS), None)
            for x in (ta, tb)
        ]
        if acts[0] and acts[1] and acts[0] != acts[1]:
            return False
        sim = self.cos(ta, tb)
        if a.get("description") and b.get("description"):
            sim = min(sim, self.cos(f"{ta} {a['description']}", f"{tb} {b['description']}"))
        return sim >= DUP_MIN_SIM


def stale_queue(tasks: Tasks, sim: Similarity, at: datetime) -> Iterable[tuple[str, str]]:
    open_now = tasks.open_at(at)
    for t in open_now:
        if tasks.state(t, at) != "pending" or EXEMPT & set(t["labels"]):
            continue
        if t.get("source") == "reviewer":
            continue
        upd = t["updated_at"] if t["updated_at"] and t["updated_at"] <= at else t["created_at"]
        if at - max(upd, t["created_at"]) > MAX_IDLE.get(t["priority"], 7 * D):
            yield "stale", t["id"]
    # duplicate: one finding per group of similar open tasks of one type, its oldest member
    by_type: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for t in open_now:
        by_type[t["task_type"]].append(t)
    for group in by_type.values():
        group.sort(key=lambda t: (t["created_at"], t["id"]))
        parent = list(range(len(group)))

        def find(i: int, parent: list[int] = parent) -> int:
            while parent[i] != i:
                i = parent[i]
            return i

        for i, a in enumerate(group):
            for j in range(i + 1, len(group)):
                b = group[j]
                if a.get("spec") != b.get("spec"):
                    continue
                if a["id"] in b["depends_on"] or b["id"] in a["depends_on"]:
                    continue
                if sim.same(a, b):
                    parent[find(j)] = find(i)
        members: dict[int, list[int]] = defaultdict(list)
        for i in range(len(group)):
            members[find(i)].append(i)
        for idx in members.values():
            if len(idx) > 1:
                yield "duplicate", group[min(idx)]["id"]
    # starved: newer, no more urgent tasks of its type (and phase) started while it waited
    for t in open_now:
        if tasks.state(t, at) != "pending" or EXEMPT & set(t["labels"]):
            continue
        ready = tasks.ready_at(t, at)
        if ready is None or at - ready < STARVED_MIN_WAIT:
            continue
        rank = PRIORITY_RANK[t["priority"]]
        passed = 0
        for o in tasks.by_type[t["task_type"]]:
            if (
                o["created_at"] > t["created_at"]
                and (not (o["phase"] and t["phase"]) or o["phase"] == t["phase"])
                and PRIORITY_RANK[o["priority"]] <= rank
                and o["started_at"]
                and ready < o["started_at"] <= at
            ):
                passed += 1
        if passed >= STARVED_MIN_PASSED:
            yield "starved", t["id"]


# -- stuck-phases -----------------------------------------------------------------------
def timeout_for(tasks: Tasks, t: dict[str, Any], at: datetime) -> timedelta:
    p95 = tasks.p95((t["task_type"], t["phase"]), at)
    if p95 is None:
        return FALLBACK_TIMEOUT
    return max(MIN_TIMEOUT, timedelta(seconds=TIMEOUT_MULT * p95))


def stuck_and_stalled(tasks: Tasks, at: datetime) -> Iterable[tuple[str, str]]:
    open_now = tasks.open_at(at)
    for t in open_now:
        if tasks.state(t, at) == "running" and at - t["started_at"] > timeout_for(tasks, t, at):
            # Reported as its own kind even inside a stalled phase: issue 8 asks that a stall
            # never swallows a stuck task (the current docs fold them into the stall).
            yield "stuck", t["id"]
    by_phase: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in open_now:
        if t["phase"]:
            by_phase[t["phase"]].append(t)
    for phase, ts_ in by_phase.items():
        running = [t for t in ts_ if tasks.state(t, at) == "running"]
        ready = [(t, tasks.ready_at(t, at)) for t in ts_ if tasks.state(t, at) == "pending"]
        ready_p = [(t, r) for t, r in ready if r is not None]
        if len(running) + len(ready_p) < MIN_OPEN:
            continue
        if any(at - t["started_at"] <= timeout_for(tasks, t, at) for t in running):
            continue  # a task running within its normal time is progress
        fin = tasks.finished_by_phase.get(phase, [])
        if not fin or fin[0] > at:
            continue  # a phase that never finished a task expects nothing
        waits = [at - r for _, r in ready_p] + [at - t["started_at"] for t in running]
        oldest = max(waits)
        if oldest < STALL_WINDOW:
            continue
        spans = {STALL_WINDOW, min(oldest, STALL_MAX_WAIT)}
        if min(_outflow_chance(fin, at, span) for span in spans) < STALL_CHANCE:
            yield "stalled-phase", f"phase:{phase}"


def _outflow_chance(fin: list[datetime], at: datetime, span: timedelta) -> float:
    """Poisson chance of the observed finishes in (at - span, at] or fewer.

    The docs' expectation, read plainly: finishes per hour of the week (UTC) over
    ``HISTORY`` before the span, each hour-of-week rate pulled toward its hour-of-day
    rate with the weight of 1 observed hour, and that toward the overall hourly rate
    with the weight of 2 hours.
    """
    start = at - span
    lo = bisect.bisect_left(fin, start - HISTORY)
    hi = bisect.bisect_right(fin, start)
    observed = bisect.bisect_right(fin, at) - hi
    # the history actually recorded: from the phase's first finish (floored to its hour)
    first = max(start - HISTORY, fin[0].replace(minute=0, second=0, microsecond=0))
    hours = max(1, int((start - first) / H))
    how_n: dict[int, int] = defaultdict(int)
    hod_n: dict[int, int] = defaultdict(int)
    for f in fin[lo:hi]:
        how_n[f.weekday() * 24 + f.hour] += 1
        hod_n[f.hour] += 1
    how_x: dict[int, int] = defaultdict(int)
    hod_x: dict[int, int] = defaultdict(int)
    for k in range(hours):
        h = first + k * H
        how_x[h.weekday() * 24 + h.hour] += 1
        hod_x[h.hour] += 1
    overall = (hi - lo) / hours
    expected = 0.0
    n_hours = max(1, round(span / H))
    for k in range(n_hours):
        h = start + k * H
        hod = (hod_n[h.hour] + 2 * overall) / (hod_x[h.hour] + 2)
        key = h.weekday() * 24 + h.hour
        expected += (how_n[key] + hod) / (how_x[key] + 1)
    # P(X <= observed) for X ~ Poisson(expected)
    term = math.exp(-expected)
    total = term
    for j in range(1, observed + 1):
        term *= expected / j
        total += term
    return min(1.0, total)


class Metrics:
    """Task metrics sorted by time, with per-type indexes."""

    def __init__(self, metrics: list[dict[str, Any]]) -> None:
        self.rows = sorted(metrics, key=lambda m: m["created_at"])
        self.at = [m["created_at"] for m in self.rows]
        self.by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for m in self.rows:
            self.by_type[m["task_type"]].append(m)
        self.type_at = {k: [m["created_at"] for m in v] for k, v in self.by_type.items()}
        # runs of the tasks that ever failed (repeated-failure looks at no others)
        runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for m in self.rows:
            runs[m["task_id"]].append(m)
        self.failing = {
            k: v for k, v in runs.items() if sum(m["status"] == "failed" for m in v) >= 2
        }

    def between(self, lo: datetime, hi: datetime) -> list[dict[str, Any]]:
        """Rows with lo < created_at <= hi."""
        return self.rows[bisect.bisect_right(self.at, lo) : bisect.bisect_right(self.at, hi)]


def is_timeout(m: dict[str, Any]) -> bool:
    err = (m.get("error") or "").lower()
    return m["status"] == "failed" and any(p in err for p in TIMEOUT_PATTERNS)


def _log_hyper_tail(a: int, row1: int, col1: int, n: int) -> float:
    """P(X >= a) for the hypergeometric count in the table's top-left cell."""

    def lc(n_: int, k: int) -> float:
        return math.lgamma(n_ + 1) - math.lgamma(k + 1) - math.lgamma(n_ - k + 1)

    hi = min(row1, col1)
    total = 0.0
    denom = lc(n, col1)
    for x in range(a, hi + 1):
        if col1 - x > n - row1:
            continue
        total += math.exp(lc(row1, x) + lc(n - row1, col1 - x) - denom)
    return min(1.0, total)


def fisher_greater(a: int, b: int, c: int, d: int) -> float:
    """One-sided Fisher exact p that a/(a+b) exceeds c/(c+d)."""
    return _log_hyper_tail(a, a + b, a + c, a + b + c + d)


def failures(metrics: Metrics, tasks: Tasks, at: datetime) -> Iterable[tuple[str, str]]:
    # timeout-pattern, per task type
    for ttype, rows in metrics.by_type.items():
        times = metrics.type_at[ttype]
        r_lo = bisect.bisect_right(times, at - TIMEOUT_WINDOW)
        r_hi = bisect.bisect_right(times, at)
        b_lo = bisect.bisect_right(times, at - TIMEOUT_WINDOW - TIMEOUT_BASELINE)
        recent, base = rows[r_lo:r_hi], rows[b_lo:r_lo]
        rt = sum(1 for m in recent if is_timeout(m))
        if rt < MIN_TIMEOUTS or len(base) < MIN_BASELINE_RUNS:
            continue
        rf = sum(1 for m in recent if m["status"] == "failed")
        if rt / rf < MIN_TIMEOUT_SHARE:
            continue
        bt = sum(1 for m in base if is_timeout(m))
        bf = sum(1 for m in base if m["status"] == "failed")
        p_fail = fisher_greater(rt, rf - rt, bt, bf - bt)
        p_runs = fisher_greater(rt, len(recent) - rt, bt, len(base) - bt)
        # reading: two tests, Bonferroni over the two; either below alpha fires
        if min(p_fail, p_runs) * 2 < ALPHA:
            yield "timeout-pattern", f"task_type:{ttype}"
    # error-rate: worst scope first, the others judged again without its runs
    pool = metrics.between(at - ERROR_WINDOW, at)
    while True:
        cells: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for m in pool:
            for dim in ("executor", "model", "task_type"):
                if m.get(dim):
                    c = cells[f"{dim}:{m[dim]}"]
                    c[0] += 1
                    c[1] += m["status"] == "failed"
        worst = max(
            (
                (f / n, f, s)
                for s, (n, f) in cells.items()
                if n >= MIN_RUNS and f / n > MAX_ERROR_RATE
            ),
            default=None,
        )
        if worst is None:
            break
        scope = worst[2]
        yield "error-rate", scope
        dim, name = scope.split(":", 1)
        pool = [m for m in pool if m.get(dim) != name]
    # repeated-failure: failed runs since the last success, while not completed or cancelled
    for tid, rs in metrics.failing.items():
        t = tasks.by_id.get(tid)
        if t is None or tasks.state(t, at) in ("completed", "cancelled"):
            continue
        streak = 0
        for m in rs:
            if m["created_at"] > at:
                break
            streak = streak + 1 if m["status"] == "failed" else 0
        if streak >= MAX_FAILURES:
            yield "repeated-failure", tid
    for t in tasks.many_attempts:  # or failed with that many attempts
        if tasks.state(t, at) == "failed":
            yield "repeated-failure", t["id"]


# -- usage-spikes -----------------------------------------------------------------------
def tokens(m: dict[str, Any]) -> float | None:
    if m.get("tokens_in") is None and m.get("tokens_out") is None:
        return None
    return float((m.get("tokens_in") or 0) + (m.get("tokens_out") or 0))


def outliers(metrics: Metrics) -> list[tuple[str, datetime]]:
    """(subject, recorded at) of every run far above its peers when it was recorded."""
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for m in metrics.rows:
        groups[(m["task_type"], m["model"])].append(m)
    out = []
    for rows in groups.values():
        if len(rows) <= OUTLIER_MIN_PEERS:
            continue
        times = [m["created_at"] for m in rows]
        for measure, floor in (
            (tokens, OUTLIER_MIN_TOKENS),
            (lambda m: m.get("cost_usd"), OUTLIER_MIN_COST),
        ):
            vals = [measure(m) for m in rows]
            known = sorted(v for v in vals if v)
            if not known:
                continue
            rough = known[len(known) // 2]
            for i, m in enumerate(rows):
                x = vals[i]
                if not x or x < 3.5 * rough:  # prefilter; the exact test follows
                    continue
                lo = bisect.bisect_left(times, m["created_at"] - OUTLIER_HISTORY)
                peers = [v for j, v in enumerate(vals[lo : i + 1], lo) if v and j != i]
                peers = peers[-OUTLIER_MAX_PEERS:]
                if len(peers) < OUTLIER_MIN_PEERS:
                    continue
                logs = [math.log(v) for v in peers]
                med = statistics.median(logs)
                spread = 1.4826 * mad(logs, med)
                if spread <= 0:
                    continue
                score = (math.log(x) - med) / spread
                ratio = x / math.exp(med)
                far = (score >= OUTLIER_SCORE and ratio >= OUTLIER_MIN_RATIO) or (
                    ratio >= OUTLIER_CLEAR_RATIO and score >= OUTLIER_CLEAR_SCORE
                )
                if far and x - math.exp(med) >= floor:
                    out.append((f"task:{m['task_id']}", m["created_at"]))
    return out


def _poisson_sf(n: int, lam: float) -> float:
    """P(N >= n) for N ~ Poisson(lam)."""
    if n <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    term = math.exp(-lam)
    cdf = term
    for k in range(1, n):
        term *= lam / k
        cdf += term
    return max(0.0, 1.0 - cdf)


Z3_TAIL = 0.00135  # one-sided normal tail beyond 3


class Spikes:
    """Hourly usage per scope and the documented spike test, with cause attribution."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.hours: dict[tuple[str, datetime], list[dict[str, Any]]] = defaultdict(list)
        self.first: dict[str, datetime] = {}
        for m in metrics.rows:
            hour = m["created_at"].replace(minute=0, second=0, microsecond=0)
            for dim in SPIKE_DIMS:
                if m.get(dim):
                    scope = f"{dim}:{m[dim]}"
                    self.hours[(scope, hour)].append(m)
                    self.first.setdefault(scope, m["created_at"])
        self._anom: dict[Any, tuple[bool, float]] = {}

    @staticmethod
    def _sums(rows: list[dict[str, Any]], measure: Any) -> list[float]:
        return [v for v in (measure(m) for m in rows) if v is not None]

    def anomalous(
        self, scope: str, hour: datetime, exclude: str | None = None
    ) -> tuple[bool, float]:
        """Is this complete hour anomalous for the scope; and its cost excess."""
        key = (scope, hour, exclude)
        if key in self._anom:
            return self._anom[key]
        result = (False, 0.0)
        first = self.first[scope]
        if hour - first >= SPIKE_MIN_HISTORY:
            rows = self.hours.get((scope, hour), [])
            if exclude:
                dim, name = exclude.split(":", 1)
                rows = [m for m in rows if m.get(dim) != name]
            weekly = hour - first >= 21 * D
            period = 7 * D if weekly else D
            # reading: the same hour +-1 h of earlier days (of the week after three weeks)
            base_hours = [
                hour - k * period + dh * H
                for k in range(1, int(SPIKE_BASELINE / period) + 1)
                for dh in (-1, 0, 1)
                if hour - k * period + dh * H >= first
            ]
            for measure, floor in (
                (tokens, SPIKE_MIN_TOKENS),
                (lambda m: m.get("cost_usd"), SPIKE_MIN_COST),
            ):
                vals = self._sums(rows, measure)
                if len(vals) < 2:
                    continue  # without its largest task nothing would be left
                x = sum(vals) - max(vals)
                n = len(vals) - 1
                base = [
                    sum(self._sums(self.hours.get((scope, b), []), measure)) for b in base_hours
                ]
                counts = [
                    len(self._sums(self.hours.get((scope, b), []), measure)) for b in base_hours
                ]
                if len(base) < 3:
                    continue
                med = statistics.median(base)
                spread = 1.4826 * mad(base, med)
                z_ok = (x - med) / spread >= SPIKE_SCORE if spread > 0 else x > med
                if not (z_ok and x >= SPIKE_MIN_RATIO * med and x - med >= floor):
                    continue
                lam = statistics.mean(counts)
                by_count = _poisson_sf(n, lam) <= Z3_TAIL
                per_task = [
                    v
                    for b in base_hours
                    for v in self._sums(self.hours.get((scope, b), []), measure)
                ]
                by_size = False
                if len(per_task) >= 2:
                    mu, sd = statistics.mean(per_task), statistics.stdev(per_task)
                    by_size = sd > 0 and (x / n - mu) / (sd / math.sqrt(n)) >= SPIKE_VOLUME_SCORE
                if by_count or by_size:
                    cost = self._sums(rows, lambda m: m.get("cost_usd"))
                    cbase = [
                        sum(self._sums(self.hours.get((scope, b), []), lambda m: m.get("cost_usd")))
                        for b in base_hours
                    ]
                    result = (True, sum(cost) - statistics.median(cbase))
                    break
        self._anom[key] = result
        return result

    def open_at(self, scope: str, at: datetime, exclude: str | None = None) -> float | None:
        """Spike open at ``at`` (its excess), read from the complete hours of the lookback."""
        last = at.replace(minute=0, second=0, microsecond=0)  # hours before this are complete
        is_open, run, calm, excess = False, 0, 0, 0.0
        h = last - SPIKE_LOOKBACK
        while h < last:
            bad, ex = self.anomalous(scope, h, exclude)
            if bad:
                run, calm = run + 1, 0
                if is_open or run >= SPIKE_OPEN_AFTER:
                    is_open = True
                    excess += ex
            else:
                run, calm = 0, calm + 1
                if is_open and calm >= SPIKE_CLOSE_AFTER:
                    is_open, excess = False, 0.0
            h += H
        return excess if is_open else None

    def firing(self, at: datetime) -> Iterable[str]:
        scopes = [s for s in self.first if self.first[s] <= at]
        cands = {s: e for s in scopes if (e := self.open_at(s, at)) is not None}
        while cands:
            cause = max(cands, key=lambda s: cands[s])
            yield cause
            del cands[cause]
            # the rest judged again without the cause's tasks
            cands = {s: e for s in cands if (e := self.open_at(s, at, cause)) is not None}


def budget(metrics: Metrics, limit: float, at: datetime) -> bool:
    if limit <= 0:
        return False
    midnight = datetime.combine(at.date(), time(0), tzinfo=at.tzinfo)
    lo = bisect.bisect_left(metrics.at, midnight)
    hi = bisect.bisect_right(metrics.at, at)
    return sum(m.get("cost_usd") or 0.0 for m in metrics.rows[lo:hi]) > limit


# -- flaky-tests ------------------------------------------------------------------------
FAIL = {"failed", "error"}


def tests_at(by_test: dict[str, list[dict[str, Any]]], at: datetime) -> Iterable[tuple[str, str]]:
    for name, rows in by_test.items():
        runs = [r for r in rows if r["ran_at"] <= at]
        if not runs:
            continue
        # holdout: skipped in every run of the last 14d, the skipping begun 14d ago or more
        recent = [r for r in runs if r["ran_at"] > at - SKIPPED_FOR]
        if recent and all(r["outcome"] == "skipped" for r in recent):
            k = len(runs)
            while k and runs[k - 1]["outcome"] == "skipped":
                k -= 1
            if runs[k]["ran_at"] <= at - SKIPPED_FOR:
                yield "holdout", name
                continue
        ran = [r for r in runs if r["outcome"] != "skipped"]
        if not ran:
            continue
        # broken: the last >= 3 runs failed, on commits that never passed, and not chance
        k = len(ran)
        while k and ran[k - 1]["outcome"] in FAIL:
            k -= 1
        streak = ran[k:]
        if len(streak) >= BROKEN_AFTER:
            shas = {r["commit_sha"] for r in streak}
            passed = any(
                r["commit_sha"] in shas and r["outcome"] in ("passed", "flaky") for r in ran
            )
            before = ran[max(0, k - WINDOW_RUNS) : k]
            rate = (
                (sum(r["outcome"] in FAIL or r["outcome"] == "flaky" for r in before) / len(before))
                if before
                else 0.0
            )
            if not passed and rate ** len(streak) <= BROKEN_MAX_CHANCE:
                yield "broken", name
                continue
        # flaky: proof or flip rate in the last 30 runs up to the latest failure plus the
        # passes since, unless recovered
        last_bad = max((i for i, r in enumerate(ran) if r["outcome"] != "passed"), default=None)
        if last_bad is None:
            continue
        window = ran[max(0, last_bad + 1 - WINDOW_RUNS) :]
        bad = [r for r in window if r["outcome"] in FAIL or r["outcome"] == "flaky"]
        if not bad:
            continue
        proof = any(r["outcome"] == "flaky" for r in window)
        by_sha: dict[str, set[str]] = defaultdict(set)
        for r in window:
            by_sha[r["commit_sha"]].add("fail" if r["outcome"] in FAIL else r["outcome"])
        proof = proof or any({"passed", "fail"} <= v or "flaky" in v for v in by_sha.values())
        flips = sum(
            (a["outcome"] == "passed") != (b["outcome"] == "passed")
            for a, b in itertools.pairwise(window)
        )
        if not proof and not (
            len(window) >= FLIP_MIN_RUNS and flips / (len(window) - 1) > FLIP_RATE
        ):
            continue
        # recovered: a pass streak improbable at the window's failure rate, streak included,
        # or a quiet period with no failure
        passes_since = len(ran) - 1 - last_bad
        p_fail = len(bad) / len(window)
        if (1 - p_fail) ** passes_since < RECOVER_CHANCE:
            continue
        if at - ran[last_bad]["ran_at"] >= RECOVER_AFTER:
            continue
        yield "flaky", name


# -- goal-progress ----------------------------------------------------------------------
def goals_at(
    tasks: Tasks, goals: dict[str, dict[str, Any]], at: datetime
) -> Iterable[tuple[str, str]]:
    for gid, spec in goals.items():
        items = [t for t in tasks.by_goal.get(gid, []) if t["created_at"] <= at]
        states = [tasks.state(t, at) for t in items]
        items_st = [(t, s) for t, s in zip(items, states, strict=True) if s != "cancelled"]
        if not items_st:
            continue
        open_work = any(s in ("pending", "running", "failed") for _, s in items_st)
        moves = [t["started_at"] for t, _ in items_st if t["started_at"] and t["started_at"] <= at]
        moves += [t["finished_at"] for t, s in items_st if s == "completed"]
        last = max(moves) if moves else min(t["created_at"] for t, _ in items_st)
        if open_work and at - last >= STALLED_AFTER:
            yield "stalled", f"goal:{gid}"
        if "deadline" in spec:
            # reading: a date deadline ends with its day (UTC)
            deadline = datetime.fromisoformat(spec["deadline"]).replace(tzinfo=at.tzinfo) + D
            done = sum(1 for _, s in items_st if s == "completed")
            running = sum(1 for _, s in items_st if s == "running")
            target = spec.get("target", len(items_st))
            remaining = target - done - RUNNING_WEIGHT * running
            if remaining <= 0:
                continue
            recent = sum(
                1 for t, s in items_st if s == "completed" and t["finished_at"] > at - RATE_WINDOW
            )
            rate = recent / RATE_WINDOW.days
            if at >= deadline or rate == 0 or at + timedelta(days=remaining / rate) > deadline:
                yield "at-risk", f"goal:{gid}"


# -- all together -----------------------------------------------------------------------
def label(history: History, instants: list[datetime]) -> list[Label]:
    """Every problem that held at some instant, with the spans it held (grid resolution)."""
    tasks = Tasks(history.tasks, history.end)
    metrics = Metrics(history.metrics)
    sim = Similarity(history.tasks)
    spikes = Spikes(metrics)
    by_test: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(history.tests, key=lambda r: (r["ran_at"], r["run_id"])):
        by_test[r["test_id"]].append(r)
    bad_tests = {n: rs for n, rs in by_test.items() if any(r["outcome"] != "passed" for r in rs)}
    outlier_at = outliers(metrics)
    held: dict[tuple[str, str], list[bool]] = defaultdict(lambda: [False] * len(instants))
    for i, at in enumerate(instants):
        found: set[tuple[str, str]] = set()
        found.update(stale_queue(tasks, sim, at))
        found.update(stuck_and_stalled(tasks, at))
        found.update(failures(metrics, tasks, at))
        found.update(("task-outlier", s) for s, t in outlier_at if t <= at < t + OUTLIER_WINDOW)
        found.update(("spike", s) for s in spikes.firing(at))
        if budget(metrics, history.daily_budget_usd, at):
            found.add(("budget", "all"))
        found.update(tests_at(bad_tests, at))
        found.update(goals_at(tasks, history.goals, at))
        for k in found:
            held[k][i] = True
    labels = []
    for (kind, subject), flags in sorted(held.items()):
        episodes: list[tuple[str, str | None]] = []
        start = None
        for i, f in enumerate(flags):
            if f and start is None:
                start = ts(instants[i])
            elif not f and start is not None:
                episodes.append((start, ts(instants[i])))
                start = None
        if start is not None:
            episodes.append((start, None))
        labels.append(Label(KIND_RULE[kind], kind, subject, episodes))
    return labels
