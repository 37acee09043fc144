"""A seeded generator of realistic, labelled agent-pipeline histories.

``simulate()`` writes weeks of a pipeline's life into a store and a workspace
folder: spec chains flowing through the phases spec → impl → review → test on
a pool of executors, several models with their own speed, failure rate and
price, retries, daily and weekly seasonality with short bursts, A/B tags, CI
test runs, Markdown specs shaped like a real one and the repository files they
list. A clean history (``problems=False``) is an ordinary healthy pipeline a
good reviewer should not flag at all. With problems, every kind the rule
modules look for is injected at a known subject and time and returned as a
``Label``, so one generator serves both ``reviewer demo`` and
``bench/quality.py``.

The same seed gives the same rows, files and labels.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from reviewer.sim.review import REVIEW_KINDS, review_problems
from rules import REGISTRY
from store.base import Store

PHASES = ("spec", "impl", "review", "test")
MODELS = ("claude", "cursor/composer-1", "cursor/auto")
EXECUTORS = ("runner-a", "runner-b", "runner-c", "runner-d")
# Worker slots per ten: runner-a is the big box, runner-d a spare.
_SLOT_EXECUTOR = (0, 0, 0, 0, 1, 1, 1, 2, 2, 3)
GOALS = {
    "g-metrics": "Pipeline metrics endpoint live",
    "g-ab": "A/B testing of prompts and models",
    "g-dashboard": "Goal dashboard shipped",
    "g-selfheal": "Self-healing pipeline",
}
MAX_ATTEMPTS = 2  # the pipeline retries a failed run once; three failures is a problem

ALL_KINDS: tuple[tuple[str, str], ...] = (
    ("stale-queue", "stale"),
    ("stale-queue", "duplicate"),
    ("stale-queue", "starved"),
    ("stuck-phases", "stuck"),
    ("stuck-phases", "stalled-phase"),
    ("stuck-phases", "timeout-pattern"),
    ("stuck-phases", "repeated-failure"),
    ("stuck-phases", "error-rate"),
    ("usage-spikes", "task-outlier"),
    ("usage-spikes", "spike"),
    ("usage-spikes", "budget"),
    ("spec-drift", "template"),
    ("spec-drift", "untestable"),
    ("spec-drift", "missing-file"),
    ("spec-drift", "unrequested-change"),
    ("spec-drift", "stale-spec"),
    ("flaky-tests", "flaky"),
    ("flaky-tests", "broken"),
    ("flaky-tests", "holdout"),
    ("goal-progress", "stalled"),
    ("goal-progress", "at-risk"),
    *REVIEW_KINDS,
)

_MODEL_MIX: dict[str, tuple[tuple[str, float], ...]] = {
    "spec": (("claude", 0.6), ("cursor/auto", 0.4)),
    "impl": (("cursor/composer-1", 0.45), ("claude", 0.35), ("cursor/auto", 0.2)),
    "review": (("claude", 0.7), ("cursor/auto", 0.3)),
    "test": (("cursor/auto", 0.6), ("cursor/composer-1", 0.4)),
    "heal": (("claude", 1.0),),
}
_MEDIAN_S = {"spec": 360.0, "impl": 1500.0, "review": 480.0, "test": 720.0, "heal": 600.0}
_MODEL_SPEED = {"claude": 1.0, "cursor/composer-1": 0.8, "cursor/auto": 1.15}
_MODEL_FAIL = {"claude": 0.05, "cursor/composer-1": 0.07, "cursor/auto": 0.09}
_TYPE_FAIL = {"spec": 0.8, "impl": 1.3, "review": 0.7, "test": 1.0, "heal": 1.0}
_TOKENS_IN = {"spec": 18000.0, "impl": 70000.0, "review": 30000.0, "test": 14000.0, "heal": 25000.0}
_MODEL_CTX = {"claude": 1.0, "cursor/composer-1": 0.85, "cursor/auto": 1.2}
_PRICE = {"claude": (3.0, 15.0), "cursor/composer-1": (1.25, 10.0), "cursor/auto": (0.5, 2.0)}
_HOUR_W = np.array(
    [0.3, 0.25, 0.2, 0.2, 0.25, 0.35, 0.55, 0.8, 1.1, 1.4, 1.55, 1.6,
     1.45, 1.5, 1.6, 1.55, 1.4, 1.2, 1.0, 0.9, 0.8, 0.65, 0.5, 0.4]
)  # fmt: skip
_HOUR_W = _HOUR_W / _HOUR_W.mean()
_DAY_W = np.array([1.15, 1.2, 1.2, 1.15, 1.05, 0.6, 0.55])
_DAY_W = _DAY_W / _DAY_W.mean()
_PRIORITIES = (("normal", 0.78), ("high", 0.14), ("low", 0.06), ("critical", 0.02))
_RANK = {"critical": 3, "high": 2, "normal": 1, "low": 0}
_ERRORS = (
    "AssertionError: generated tests failed (2 of 14)",
    "Patch did not apply cleanly: conflict in {file}",
    "Model returned a malformed tool call; aborting run",
    "Lint failed: ruff found 3 errors in {file}",
    "Rate limited by provider (HTTP 429) after 5 retries",
)

_VERBS = (
    "Add", "Persist", "Expose", "Aggregate", "Track", "Validate", "Cache", "Retry", "Document",
    "Refactor", "Index", "Paginate", "Stream", "Export", "Schedule", "Audit",
)  # fmt: skip
_OBJECTS = (
    "task metrics", "success rates", "prompt variants", "model comparison", "goal progress",
    "queue health", "usage summary", "agent logs", "spec coverage", "heal tasks", "test results",
    "executor status", "cost report", "skill versions", "review decisions", "backlog items",
    "retry policy", "phase timeouts", "webhook events", "release notes",
)  # fmt: skip
_AREAS = (
    "in the API", "for the dashboard", "in agent_runner", "per executor", "per model",
    "in SQLite", "for the CLI", "behind a feature flag", "in the scheduler", "for reviewers",
)  # fmt: skip
_TEST_MODULES = (
    "metrics", "queue", "scheduler", "api", "specs", "review", "usage", "storage", "cli", "auth",
)  # fmt: skip
_TEST_VERBS = (
    "returns", "rejects", "aggregates", "persists", "retries", "orders", "skips", "parses",
    "renders", "counts", "streams", "validates",
)  # fmt: skip
_TEST_NOUNS = (
    "empty_input", "duplicate_ids", "p95_latency", "failed_runs", "unicode_titles", "large_batch",
    "missing_fields", "naive_timestamps", "zero_duration", "concurrent_writers", "old_schema",
    "bad_token", "long_description", "nested_lists", "utc_offsets",
)  # fmt: skip


@dataclass(frozen=True)
class Label:
    """One injected problem: which rule should find it, what kind, about what, from when."""

    rule: str
    kind: str
    subject: str
    started_at: str
    # When the problem held, as [start, end) spans, end None while it lasts; empty
    # means from ``started_at`` to the end of the history. A problem that comes and
    # goes (a circuit breaker) can only be seen by a review inside one of them.
    episodes: tuple[tuple[str, str | None], ...] = ()

    def seen_at(self, instant: str) -> bool:
        """Whether the problem held at ``instant`` (a review then could report it)."""
        if not self.episodes:
            return instant >= self.started_at
        return any(a <= instant and (b is None or instant < b) for a, b in self.episodes)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.rule, self.kind, self.subject)


@dataclass(frozen=True)
class Injection:
    """A fault the generator injected whose label is judged from the records (bench/)."""

    rule: str
    kind: str
    subject: str
    at: str


@dataclass
class SimRecord:
    """The generated records as the labeller in ``bench/sim_labels.py`` judges them.

    ``pipeline`` gives the time axis (``ts``, ``at``, ``start``, ``horizon``) and the
    metric runs with their simulation time ``_t`` and fault share ``_fault_share``;
    ``spike_metrics`` are those runs before the task outlier was inflated.
    """

    pipeline: Any
    task_rows: list[dict[str, Any]]
    spike_metrics: list[dict[str, Any]]
    breaker_since: float | None


# The stalled-phase definition the generator may be given: (pipeline, task rows,
# phase, outage start) -> whether the outage stalled the phase.
StallCheck = Callable[[Any, list[dict[str, Any]], str, float], bool]


@dataclass
class Labels:
    """What ``simulate()`` made: the labels, the history's span, and its config needs.

    ``labels`` are the problems whose label is what was injected; ``injections`` the
    faults whose labels ``bench/sim_labels.py`` judges from ``record``.
    """

    labels: list[Label]
    start: datetime
    end: datetime
    specs_dir: Path
    repo_dir: Path
    injections: list[Injection] = field(default_factory=list)
    record: SimRecord | None = field(default=None, repr=False, compare=False)
    rule_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    goals: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def config(
        self, store_url: str, *, approval: str = "manual", auto: Iterable[str] = ()
    ) -> dict[str, Any]:
        """A config (as a dict) that reviews this history: every known rule enabled."""
        auto_set = set(auto)
        rules: dict[str, dict[str, Any]] = {}
        for rule_id, module in REGISTRY.items():
            table: dict[str, Any] = {"enabled": True}
            table["approval"] = "auto" if rule_id in auto_set else approval
            for key, value in self.rule_options.get(rule_id, {}).items():
                if key in getattr(module.Options, "model_fields", {}):
                    table[key] = value
            rules[rule_id] = table
        return {
            "reviewer": {
                "store": store_url,
                "specs_dir": str(self.specs_dir),
                "repo_dir": str(self.repo_dir),
                "max_new_proposals_per_cycle": 100,
            },
            "rules": rules,
            "goals": self.goals,
        }

    def public(self) -> dict[str, Any]:
        return {
            "start": _ts(self.start),
            "end": _ts(self.end),
            "labels": [asdict(label) for label in self.labels],
            "injections": [asdict(injection) for injection in self.injections],
            "counts": self.counts,
        }


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def to_toml(data: dict[str, Any], header: str = "") -> str:
    """Write a config dict as TOML: top-level tables, or tables of tables like ``[rules.X]``."""

    def key(k: str) -> str:
        return k if k.replace("-", "").replace("_", "").isalnum() else json.dumps(k)

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(f"cannot write {type(v).__name__} as TOML")

    out = [header] if header else []
    for name, body in data.items():
        nested = bool(body) and all(isinstance(v, dict) for v in body.values())
        tables = body.items() if nested else [(None, body)]
        for sub, table in tables:
            out.append(f"[{name}]" if sub is None else f"[{name}.{key(sub)}]")
            out.extend(f"{key(k)} = {value(v)}" for k, v in table.items())
            out.append("")
    return "\n".join(out)


# -- the pipeline -----------------------------------------------------------------------
@dataclass
class _Task:
    id: str
    title: str
    description: str
    task_type: str
    priority: str
    created: float
    model: str
    goal: str | None
    spec: str | None = None
    spec_no: int | None = None
    depends_on: list[str] = field(default_factory=list)
    prompt_variant: str | None = None
    skill_version: str | None = None
    labels: list[str] = field(default_factory=list)
    followup: bool = True
    status: str = "pending"
    attempts: int = 0
    started: float | None = None
    finished: float | None = None
    updated: float | None = None
    executor: str | None = None
    error: str | None = None
    files_changed: list[str] = field(default_factory=list)
    # the injected timeout: the run's own duration had the fault not killed it, and
    # whether a fault killed an earlier attempt (every later attempt is its doing)
    fault_natural: float | None = None
    fault_retry: bool = False


@dataclass
class _Spec:
    no: int
    title: str
    path: str  # relative to specs_dir
    goal: str
    files: list[tuple[str, str]]  # (repo path, what it is)
    written: float | None = None
    impl_done: float | None = None
    chain_done: float | None = None


@dataclass
class _Faults:
    stalled_phase: tuple[str, float] | None = None
    broken: tuple[str, str, float, float] | None = None  # (model|executor, name, from, p)
    timeout_type: tuple[str, float, float] | None = None
    stopped_goal: tuple[str, float] | None = None


class _Pipeline:
    """A discrete-event run of the pipeline: arrivals, a priority queue, executor slots."""

    def __init__(
        self,
        rng: np.random.Generator,
        start: datetime,
        days: int,
        tasks_per_day: float,
        noise: float,
        faults: _Faults,
        calendar: datetime | None = None,
    ):
        self.rng = rng
        self.start = start
        # The calendar the daily and weekly seasonality follows: ``start`` unless the
        # history was moved in time (``simulate(end=...)``), which keeps its shape.
        self.calendar = calendar or start
        self.horizon = days * 86400.0 - 6 * 3600.0  # the history ends at 18:00 on its last day
        self.tasks_per_day = tasks_per_day
        self.noise = noise
        self.faults = faults
        self.sigma = 0.42 + 0.18 * noise
        self.tasks: dict[str, _Task] = {}
        self.specs: dict[int, _Spec] = {}
        self.metrics: list[dict[str, Any]] = []
        self.starts: list[tuple[float, str]] = []  # (start time, task id) of every attempt
        self._seq = 0
        self._events: list[tuple[float, int, str, Any]] = []
        self._queue: list[tuple[int, float, int, _Task]] = []
        self._held: list[_Task] = []
        self._rerun_specs: set[int] = set()
        mean_work = sum(_MEDIAN_S[p] for p in PHASES) * 1.25 / 4
        peak_per_s = tasks_per_day / 86400.0 * float(_HOUR_W.max() * _DAY_W.max()) * 2.6
        self.slots = max(20, int(np.ceil(peak_per_s * mean_work * 4.0)) + 4)
        self._free = list(range(self.slots))
        self.timeout_s = {
            k: v * 1.25 * float(np.exp(2.4 * self.sigma)) for k, v in _MEDIAN_S.items()
        }

    # -- helpers
    def at(self, t: float) -> datetime:
        return self.start + timedelta(seconds=t)

    def ts(self, t: float) -> str:
        return _ts(self.at(t))

    def pick(self, options: tuple[tuple[str, float], ...]) -> str:
        names = [o[0] for o in options]
        weights = np.array([o[1] for o in options])
        return names[int(self.rng.choice(len(names), p=weights / weights.sum()))]

    def rate(self, t: float, bursts: list[tuple[float, float, float]]) -> float:
        dt = self.calendar + timedelta(seconds=t)
        r = float(_HOUR_W[dt.hour] * _DAY_W[dt.weekday()])
        for b0, b1, amp in bursts:
            if b0 <= t < b1:
                r *= amp
        return r

    def push(self, t: float, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, kind, payload))

    # -- arrivals
    def arrivals(self) -> list[float]:
        """Spec-chain arrival times: a seasonal Poisson process with short bursts."""
        days = self.horizon / 86400.0
        bursts = []
        for _ in range(int(self.rng.poisson(days / 3.0))):
            b0 = float(self.rng.uniform(0, self.horizon))
            length = float(self.rng.uniform(2700, 5400))
            bursts.append(
                (b0, b0 + length, float(self.rng.uniform(1.6, 2.2) * (0.8 + 0.3 * self.noise)))
            )
        per_s = self.tasks_per_day / 4.0 / 86400.0
        peak = float(_HOUR_W.max() * _DAY_W.max()) * max([1.0] + [b[2] for b in bursts])
        out: list[float] = []
        t = 0.0
        while True:
            t += float(self.rng.exponential(1.0 / (per_s * peak)))
            if t >= self.horizon:
                return out
            if self.rng.random() * peak <= self.rate(t, bursts):
                out.append(t)

    def new_spec(self, t: float) -> _Spec:
        no = len(self.specs) + 1
        verb = _VERBS[int(self.rng.integers(len(_VERBS)))]
        obj = _OBJECTS[int(self.rng.integers(len(_OBJECTS)))]
        area = _AREAS[int(self.rng.integers(len(_AREAS)))]
        title = f"{verb} {obj} {area}"
        slug = "-".join(w.lower().strip("_") for w in f"{verb} {obj}".split())
        stem = slug.replace("-", "_")
        goals = list(GOALS)
        if self.faults.stopped_goal and t >= self.faults.stopped_goal[1]:
            goals.remove(self.faults.stopped_goal[0])
        goal = goals[int(self.rng.integers(len(goals)))]
        files = [
            (f"api/app/services/{stem}_{no:04d}.py", "Persist and aggregate " + obj),
            (f"api/app/routers/{stem}_{no:04d}.py", "Wire " + obj + " into the API"),
        ]
        if self.rng.random() < 0.6:
            files.append((f"api/app/models/{stem}_{no:04d}.py", "Pydantic models for " + obj))
        files.append((f"api/tests/test_{stem}_{no:04d}.py", "Tests for " + obj))
        path = f"{no:04d}-{slug}.md"
        spec = _Spec(no=no, title=title, path=path, goal=goal, files=files)
        self.specs[no] = spec
        return spec

    def new_task(
        self, t: float, task_type: str, spec: _Spec, priority: str, depends: list[str]
    ) -> _Task:
        tid = f"task-{len(self.tasks) + 1:05d}"
        verbs = {
            "spec": "Write spec",
            "impl": "Implement spec",
            "review": "Review implementation of spec",
            "test": "Test spec",
        }
        title = f"{verbs[task_type]} {spec.no:04d}: {spec.title}"
        description = (
            f"{verbs[task_type]} specs/{spec.path} ({spec.title.lower()}). "
            f"Phase {task_type} of the spec pipeline for goal {spec.goal}."
        )
        model = self.pick(_MODEL_MIX[task_type])
        task = _Task(
            id=tid,
            title=title,
            description=description,
            task_type=task_type,
            priority=priority,
            created=t,
            model=model,
            goal=spec.goal,
            spec=f"specs/{spec.path}",
            spec_no=spec.no,
            depends_on=depends,
            prompt_variant=("prompt-a" if self.rng.random() < 0.5 else "prompt-b")
            if task_type in ("impl", "review")
            else None,
            skill_version="skills-2026.10" if t < self.horizon * 0.55 else "skills-2026.11",
            labels=[f"goal:{spec.goal}", f"phase:{task_type}"],
        )
        self.tasks[tid] = task
        return task

    # -- the event loop
    def run(self, storm: list[float]) -> None:
        self.arrival_times = self.arrivals()
        for t in self.arrival_times:
            spec = self.new_spec(t)
            task = self.new_task(t, "spec", spec, self.pick(_PRIORITIES), [])
            self.push(t, "arrive", task)
        for t in storm:
            self.push(t, "storm", None)
        while self._events:
            t, _, kind, payload = heapq.heappop(self._events)
            if t > self.horizon:
                break
            if kind == "arrive":
                self._enqueue(payload)
            elif kind == "storm":
                rerun = self._rerun(t)
                if rerun is not None:
                    self._enqueue(rerun)
            else:
                self._finish(t, *payload)
            self._dispatch(t)

    def _rerun(self, t: float) -> _Task | None:
        """A runaway loop re-queues the implementation of an already implemented spec."""
        stopped = self.faults.stopped_goal[0] if self.faults.stopped_goal else None
        specs = [
            s
            for s in self.specs.values()
            if s.impl_done is not None and s.goal != stopped and s.no not in self._rerun_specs
        ]
        if len(specs) <= len(self._rerun_specs):
            return None  # a small pipeline: leave half its specs alone
        spec = specs[int(self.rng.integers(len(specs)))]
        self._rerun_specs.add(spec.no)  # each spec once, so no two re-runs are duplicates
        task = self.new_task(t, "impl", spec, "normal", [])
        task.title = f"Re-run implementation of spec {spec.no:04d}: {spec.title}"
        task.description = f"Retry loop re-queued the implementation of specs/{spec.path}."
        task.followup = False
        return task

    def _enqueue(self, task: _Task) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (-_RANK[task.priority], task.created, self._seq, task))

    def _dispatch(self, t: float) -> None:
        stall = self.faults.stalled_phase
        while self._queue and self._free:
            _, _, _, task = heapq.heappop(self._queue)
            slot = self._free.pop(int(self.rng.integers(len(self._free))))
            if stall and task.task_type == stall[0] and t >= stall[1]:
                # the phase's workers are down: its work waits in the queue, nothing leaves
                self._free.append(slot)
                self._held.append(task)
                continue
            self._start(t, slot, task)

    def _start(self, t: float, slot: int, task: _Task) -> None:
        executor = EXECUTORS[_SLOT_EXECUTOR[slot % 10]]
        task.attempts += 1
        task.started = t
        task.updated = t
        task.status = "running"
        task.executor = executor
        self.starts.append((t, task.id))
        median = _MEDIAN_S[task.task_type] * _MODEL_SPEED[task.model]
        duration = median * float(np.exp(self.rng.normal(0.0, self.sigma)))
        limit = self.timeout_s[task.task_type]
        p_fail = _MODEL_FAIL[task.model] * _TYPE_FAIL[task.task_type] * (0.8 + 0.4 * self.noise)
        error: str | None = None
        if duration > limit:
            duration, error = limit, f"Timeout: agent run exceeded {int(limit)}s and was killed"
        elif self.rng.random() < p_fail:
            duration *= float(self.rng.uniform(0.3, 1.0))
            spec = self.specs.get(task.spec_no or 0)
            file = spec.files[0][0] if spec else "api/app/main.py"
            error = _ERRORS[int(self.rng.integers(len(_ERRORS)))].format(file=file)
        tt = self.faults.timeout_type
        hit = tt is not None and task.task_type == tt[0] and t >= tt[1] and error is None
        if tt is not None and hit and self.rng.random() < tt[2]:
            task.fault_natural = duration
            duration = limit
            error = f"Timeout: agent run exceeded {int(limit)}s and was killed"
        out = self.faults.broken
        value = executor if out and out[0] == "executor" else task.model
        if out and value == out[1] and t >= out[2] and self.rng.random() < out[3]:
            duration = float(self.rng.uniform(8, 40))
            error = f"{executor}: git worktree add failed: No space left on device"
        self.push(t + duration, "finish", (slot, task, duration, error))

    def _finish(self, t: float, slot: int, task: _Task, duration: float, error: str | None) -> None:
        self._free.append(slot)
        metric = self._metric(t, task, duration, error)
        # The share of this run's usage that the injected faults caused: all of a
        # runaway loop's re-run or of a retry the timeout fault forced; for a run the
        # fault killed, what running to the time limit added (tokens grow as
        # duration ** 0.3, see _metric).
        if not task.followup or task.fault_retry:
            metric["_fault_share"] = 1.0
        elif task.fault_natural is not None:
            metric["_fault_share"] = 1.0 - (max(task.fault_natural, 1.0) / duration) ** 0.3
            task.fault_natural, task.fault_retry = None, True
        self.metrics.append(metric)
        task.updated = t
        if error is not None:
            task.error = error
            if task.attempts < MAX_ATTEMPTS:
                task.status = "pending"
                self.push(t + float(self.rng.uniform(30, 120)), "arrive", task)
                return
            task.status, task.finished = "failed", t
            return
        task.status, task.finished, task.error = "completed", t, None
        spec = self.specs.get(task.spec_no or 0)
        if spec is None or not task.followup:
            return
        if task.task_type == "spec":
            spec.written = t
        if task.task_type == "impl":
            spec.impl_done = t
            task.files_changed = [f for f, _ in spec.files]
        if task.task_type == "test":
            spec.chain_done = t
            return
        nxt = PHASES[PHASES.index(task.task_type) + 1]
        at = t + float(self.rng.uniform(20, 180))
        follow = self.new_task(at, nxt, spec, task.priority, [task.id])
        self.push(at, "arrive", follow)

    def _metric(self, t: float, task: _Task, duration: float, error: str | None) -> dict[str, Any]:
        rng = self.rng
        median = _MEDIAN_S[task.task_type] * _MODEL_SPEED[task.model]
        quick = duration < 60 and task.task_type != "spec"
        tin = _TOKENS_IN[task.task_type] * _MODEL_CTX[task.model]
        tin *= float(np.exp(rng.normal(0.0, 0.35 + 0.15 * self.noise)))
        tin *= (max(duration, 1.0) / median) ** 0.3
        if quick:
            tin = float(rng.uniform(300, 1500))
        tokens_in = int(tin)
        tokens_out = int(tin * 0.12 * float(np.exp(rng.normal(0.0, 0.3))))
        p_in, p_out = _PRICE[task.model]
        return {
            "task_id": task.id,
            "task_type": task.task_type,
            "model": task.model,
            "executor": task.executor,
            "duration_seconds": round(duration, 1),
            "status": "failed" if error else "completed",
            "created_at": self.ts(t),
            "prompt_variant": task.prompt_variant,
            "skill_version": task.skill_version,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost_usd": round((tokens_in * p_in + tokens_out * p_out) / 1e6, 5),
            "api_calls": 1 if quick else int(1 + rng.poisson(2 + duration / 240)),
            "error": error,
            "extra": None,
            "_t": t,
        }

    def pending(self) -> list[_Task]:
        """Tasks still waiting at the end: queued, held, or arriving before the horizon."""
        waiting = [q[3] for q in self._queue] + self._held
        waiting += [e[3] for e in self._events if e[2] == "arrive" and e[0] <= self.horizon]
        return waiting


def _task_row(p: _Pipeline, task: _Task) -> dict[str, Any]:
    running = task.status == "running"
    return {
        "id": task.id,
        "title": task.title,
        "description": task.description,
        "task_type": task.task_type,
        "phase": task.task_type,
        "status": task.status,
        "priority": task.priority,
        "created_at": p.ts(task.created),
        "updated_at": p.ts(task.updated if task.updated is not None else task.created),
        "started_at": p.ts(task.started) if task.started is not None else None,
        "finished_at": p.ts(task.finished) if task.finished is not None and not running else None,
        "attempts": task.attempts,
        "depends_on": json.dumps(task.depends_on),
        "goal_id": task.goal,
        "spec": task.spec,
        "labels": json.dumps(task.labels),
        "model": task.model,
        "executor": task.executor,
        "prompt_variant": task.prompt_variant,
        "skill_version": task.skill_version,
        "error": task.error,
        "files_changed": json.dumps(task.files_changed),
        "source": "pipeline",
        "extra": None,
    }


# -- specs and the repository they describe ---------------------------------------------
def _spec_text(spec: _Spec, rng: np.random.Generator, *, drop: str | None = None) -> str:
    """A spec in the shape of a real one: Purpose, Requirements, Files, Acceptance Tests."""
    obj = spec.title.split(" ", 1)[1]
    reqs = [
        f"- [ ] **{spec.title}** — the core change; persist and expose it",
        f"- [ ] **Error handling** — failures of {obj} are logged with the task id",
        "- [ ] **Metrics** — duration and status reach `GET /api/agent/metrics`",
    ]
    if rng.random() < 0.5:
        reqs.append("- [ ] **Docs** — the README says how to turn it on")
    sections: list[tuple[str, list[str]]] = [
        (
            "Purpose",
            [
                f"Make the pipeline {spec.title.lower()}, so operators can see and tune it "
                f"without reading agent logs. Serves goal {spec.goal}."
            ],
        ),
        (
            "Requirements",
            (["### Phase 1: Core (implement first)"] if rng.random() < 0.5 else []) + reqs,
        ),
    ]
    if rng.random() < 0.4:
        sections.append(
            (
                "API Contract (Phase 1)",
                [
                    "### `GET /api/agent/metrics`",
                    "",
                    "**Response 200**",
                    "```json",
                    '{ "execution_time": { "p50_seconds": 45 } }',
                    "```",
                ],
            )
        )
    files = [f"- `{path}` — {what}" for path, what in spec.files]
    files.append(f"- `specs/{spec.path}` — This spec")
    sections.append(("Files to Create/Modify", files))
    sections.append(
        (
            "Acceptance Tests",
            [
                f"- Create a task, run agent_runner, verify {obj} is recorded",
                "- GET /api/agent/metrics returns the new fields when tasks exist",
            ],
        )
    )
    if rng.random() < 0.6:
        sections.append(("Out of Scope", ["- Real-time streaming dashboards"]))
    if rng.random() < 0.4:
        sections.append(
            ("See Also", ["- [005-project-manager-pipeline.md](005-project-manager-pipeline.md)"])
        )
    out = [f"# Spec: {spec.title}", ""]
    for title, lines in sections:
        if title == drop:
            continue
        out.append(f"## {title}")
        out.append("")
        if drop != f"empty:{title}":
            out.extend(lines)
            out.append("")
    return "\n".join(out)


def _touch(path: Path, text: str, when: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))


# -- CI test runs -------------------------------------------------------------------------
def _test_catalog(n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, str]] = []
    while len(out) < n:
        mod = _TEST_MODULES[int(rng.integers(len(_TEST_MODULES)))]
        cls = f"tests.test_{mod}.Test{mod.capitalize()}{'Api' if rng.random() < 0.5 else 'Store'}"
        verb = _TEST_VERBS[int(rng.integers(len(_TEST_VERBS)))]
        noun = _TEST_NOUNS[int(rng.integers(len(_TEST_NOUNS)))]
        key = (cls, f"test_{verb}_{noun}")
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


@dataclass
class _TestPlan:
    flaky: tuple[int, float] | None = None  # (test index, from t)
    broken: tuple[int, float] | None = None
    holdout: tuple[int, float] | None = None


def _test_runs(
    p: _Pipeline, seed: int, plan: _TestPlan
) -> tuple[list[dict[str, Any]], list[tuple[str, str]], dict[str, float]]:
    """CI runs through the history; returns rows, the catalog, and first-symptom times."""
    rng = p.rng
    n_tests = int(min(300, max(120, 60 + 2 * p.tasks_per_day)))
    catalog = _test_catalog(n_tests, rng)
    per_day = float(min(12, max(4, p.tasks_per_day / 10)))
    gap = 86400.0 / per_day
    times: list[float] = []
    t = float(rng.uniform(0, gap))
    while t < p.horizon:
        times.append(t)
        t += gap * float(rng.uniform(0.75, 1.25))
    # clean variance: tests skipped for a day or three, and one-off regressions fixed next commit
    skips: list[tuple[int, float, float]] = []
    for _ in range(int(rng.poisson(p.horizon / 86400 / 4))):
        s0 = float(rng.uniform(0, p.horizon))
        skips.append((int(rng.integers(n_tests)), s0, s0 + float(rng.uniform(1, 3)) * 86400))
    reserved = {x[0] for x in (plan.flaky, plan.broken, plan.holdout) if x}
    oneoff: dict[int, int] = {}
    for _ in range(int(rng.poisson(p.horizon / 86400 / 5))):
        run = int(rng.integers(len(times)))
        if times[run] < p.horizon - 2 * 86400:
            oneoff[run] = int(rng.integers(n_tests))
    durations = np.exp(rng.normal(-1.5, 1.0, n_tests))
    rows: list[dict[str, Any]] = []
    first: dict[str, float] = {}
    for i, t in enumerate(times):
        commit = hashlib.sha1(f"{seed}-commit-{i}".encode()).hexdigest()[:12]
        attempts = [(f"ci-{i:05d}", t)]
        rerun = rng.random() < 0.15 or (plan.flaky and t >= plan.flaky[1] and rng.random() < 0.5)
        if rerun and t + 1200 < p.horizon:
            attempts.append((f"ci-{i:05d}-rerun", t + 1200))
        for run_id, at in attempts:
            ran_at = p.ts(at)
            for j, (cls, name) in enumerate(catalog):
                outcome, message = "passed", None
                if j not in reserved:
                    if any(j == s[0] and s[1] <= at < s[2] for s in skips):
                        outcome, message = "skipped", "skipped: fixture data is being refreshed"
                    elif oneoff.get(i) == j:
                        outcome, message = "failed", "AssertionError: expected 200, got 500"
                flaky = plan.flaky is not None and j == plan.flaky[0] and at >= plan.flaky[1]
                if flaky and rng.random() < 0.35:
                    outcome, message = "failed", "TimeoutError: worker did not answer in 5s"
                    first.setdefault("flaky", at)
                if plan.broken and j == plan.broken[0] and t >= plan.broken[1]:
                    outcome, message = "failed", "KeyError: 'p95_seconds'"
                    first.setdefault("broken", at)
                if plan.holdout and j == plan.holdout[0] and at >= plan.holdout[1]:
                    outcome, message = "skipped", "skipped: flaky on CI, disabled until fixed"
                    first.setdefault("holdout", at)
                rows.append(
                    {
                        "run_id": run_id,
                        "test_id": f"{cls}::{name}",
                        "classname": cls,
                        "name": name,
                        "commit_sha": commit,
                        "branch": "main",
                        "outcome": outcome,
                        "duration_seconds": round(
                            float(durations[j]) * (0.8 + 0.4 * rng.random()), 3
                        ),
                        "message": message,
                        "file": f"{cls.rsplit('.', 1)[0].replace('.', '/')}.py",
                        "ran_at": ran_at,
                    }
                )
    return rows, catalog, first


# -- the generator ---------------------------------------------------------------------------
def _wanted(problems: bool | Iterable[str]) -> set[tuple[str, str]]:
    if problems is True:
        return set(ALL_KINDS)
    if problems is False:
        return set()
    names = set(problems)
    return {
        rk for rk in ALL_KINDS if rk[1] in names or f"{rk[0]}/{rk[1]}" in names or rk[0] in names
    }


def simulate(
    store: Store,
    *,
    workspace: Path,
    seed: int = 0,
    days: int = 28,
    tasks_per_day: float = 40,
    noise: float = 0.5,
    problems: bool | list[str] = True,
    start: datetime | None = None,
    end: datetime | None = None,
    stall_check: StallCheck | None = None,
) -> Labels:
    """Write a pipeline history into ``store`` and ``workspace``; return the injected problems.

    ``problems``: True for every kind in ``ALL_KINDS``, False for a clean history, or a list
    of kinds (``"stale"``), rule/kind pairs (``"stale-queue/stale"``) or rule IDs.
    The workspace gets ``repo/`` (the code) with ``repo/specs/`` (the specs) inside it.
    History runs from ``start`` (default 2026-03-05, so 28 days end on a Wednesday) to
    18:00 UTC of its last day. ``end`` (instead of ``start``) moves that same history in
    time so it ends at ``end``: every row and file is dated by the same offset, and the
    seasonality keeps the calendar of the default start, so the history has the same
    shape whatever the day (``reviewer demo`` ends it at the current hour).

    The problems that hold over spans judged from the records (a circuit breaker,
    a stalled phase, a usage spike) are recorded only as ``injections``; the
    labeller in ``bench/sim_labels.py`` turns them into labels. ``stall_check``
    (that labeller's stalled-phase definition) lets a quiet pipeline's outage
    start earlier until it stalls the phase; without it the first outage is kept.
    """
    if days < 7:
        raise ValueError("simulate needs at least 7 days of history")
    wanted = _wanted(problems)
    rng = np.random.default_rng(seed)
    if start is not None and end is not None:
        raise ValueError("simulate takes start or end, not both")
    calendar = (start or datetime(2026, 3, 5, tzinfo=UTC)).astimezone(UTC)
    H = days * 86400.0 - 6 * 3600.0
    start = calendar if end is None else end.astimezone(UTC) - timedelta(seconds=H)
    hour = 3600.0

    def on(kind: str) -> bool:
        return any(k == kind for _, k in wanted)

    # A phase whose workers go down 10h before the end is stalled within hours in a busy
    # pipeline; a quiet one may not queue enough work for it by then, so its workers go
    # down earlier (the run is repeated from the same seed, so it stays deterministic).
    for stall_back in (10, 14, 18, 22):
        rng = np.random.default_rng(seed)
        faults = _Faults()
        if on("stalled-phase"):
            faults.stalled_phase = ("review", H - stall_back * hour)
        if on("error-rate"):
            faults.broken = ("executor", "runner-c", H - 7 * hour, 0.8)
        if on("timeout-pattern") or on("failure-signature"):
            faults.timeout_type = ("test", H - 40 * hour, 0.85)
        if on("stalled"):
            faults.stopped_goal = ("g-dashboard", H - 9.5 * 86400)
        storm: list[float] = []
        storm_from = H - 5 * hour
        if on("spike"):
            storm_rate = max(20 * tasks_per_day / 4 / 24, 15.0) / hour
            t = storm_from
            while True:
                t += float(rng.exponential(1 / storm_rate))
                if t >= storm_from + 5 * hour:
                    break
                storm.append(t)

        p = _Pipeline(rng, start, days, tasks_per_day, noise, faults, calendar)
        p.run(storm)
        if faults.stalled_phase is None or stall_check is None:
            break
        rows = [_task_row(p, x) for x in p.tasks.values() if x.created <= H]
        if stall_check(p, rows, *faults.stalled_phase):
            break
    labels: list[Label] = []
    injections: list[Injection] = []

    def inject(rule: str, kind: str, subject: str, at: float) -> None:
        injections.append(Injection(rule, kind, subject, p.ts(min(at, H))))

    def label(rule: str, kind: str, subject: str, at: float) -> None:
        labels.append(Label(rule, kind, subject, p.ts(min(at, H))))

    extra_tasks: list[dict[str, Any]] = []

    def extra(tid: str, title: str, task_type: str, created: float, **kw: Any) -> dict[str, Any]:
        row: dict[str, Any] = {c: None for c in _task_row(p, next(iter(p.tasks.values())))}
        row.update(
            id=tid, title=title, description=kw.pop("description", title), task_type=task_type,
            phase=task_type, status="pending", priority="normal", created_at=p.ts(created),
            updated_at=p.ts(created), attempts=0, depends_on="[]", labels="[]",
            files_changed="[]", source="pipeline", model="claude", goal_id="g-selfheal",
        )  # fmt: skip
        row.update(kw)
        extra_tasks.append(row)
        return row

    # -- stuck-phases
    if on("timeout-pattern") and faults.timeout_type:
        kind_type, t0, _ = faults.timeout_type
        label("stuck-phases", "timeout-pattern", f"task_type:{kind_type}", t0)
    if on("stuck"):
        impl = sorted(m["duration_seconds"] for m in p.metrics if m["task_type"] == "impl")
        p95 = impl[int(0.95 * (len(impl) - 1))] if impl else 3600.0
        t0 = H - max(9 * hour, 3 * p95 + 3 * hour)
        extra(
            "task-stuck-01", "Implement streaming export of agent logs", "impl", t0 - 120,
            status="running", started_at=p.ts(t0), updated_at=p.ts(t0), attempts=1,
            executor="runner-a", model="cursor/composer-1", priority="high",
        )  # fmt: skip
        label("stuck-phases", "stuck", "task-stuck-01", t0 + 3 * p95)
    if on("repeated-failure"):
        fails = [H - 11 * hour, H - 10 * hour, H - 9 * hour]
        tid = "task-fail-01"
        extra(
            tid, "Migrate metrics_service to the async SQLite driver", "impl", fails[0] - 900,
            status="failed", started_at=p.ts(fails[2] - 700), finished_at=p.ts(fails[2]),
            updated_at=p.ts(fails[2]), attempts=3, executor="runner-b",
            error="ImportError: cannot import name 'AsyncConnection' from 'aiosqlite'",
        )  # fmt: skip
        for i, f in enumerate(fails):
            p.metrics.append(
                {**p.metrics[-1], "task_id": tid, "task_type": "impl", "model": "claude",
                 "executor": ["runner-b", "runner-a", "runner-b"][i], "duration_seconds": 700.0,
                 "status": "failed", "created_at": p.ts(f), "_t": f, "tokens_in": 52000,
                 "tokens_out": 6100, "cost_usd": 0.2475, "api_calls": 5,
                 "error": "ImportError: cannot import name 'AsyncConnection' from 'aiosqlite'"}
            )  # fmt: skip
        label("stuck-phases", "repeated-failure", tid, fails[2])

    # -- stale-queue
    # a test waiting on a cancelled design task: stale, and blocked (judged from the records)
    if on("stale") or on("blocked"):
        created = H - 3 * 86400 - 10 * hour
        extra(
            "task-dep-01", "Design the webhook retry schedule", "spec", created - 86400,
            status="cancelled", updated_at=p.ts(created - 3600), finished_at=p.ts(created - 3600),
        )  # fmt: skip
        extra(
            "task-stale-01", "Add regression test for webhook retries", "test", created,
            priority="high", depends_on=json.dumps(["task-dep-01"]),
        )  # fmt: skip
        if on("stale"):
            label("stale-queue", "stale", "task-stale-01", created + 3 * 86400)
        if on("blocked"):
            inject("priorities", "blocked", "task-stale-01", created)
    if on("duplicate"):
        texts = [
            ("Fix flaky login test in the auth suite",
             "The login test in the auth suite fails now and then; fix the flakiness."),
            ("auth suite: fix the flaky login test",
             "Fix the flaky login test of the auth suite (it fails now and then)."),
            ("FIX FLAKY LOGIN TEST (AUTH SUITE)!!",
             "login test in auth suite is flaky - please fix"),
        ]  # fmt: skip
        n = 2 + int(rng.integers(2))
        times = [H - 5 * hour, H - 4 * hour, H - 3.2 * hour][:n]
        for i in range(n):
            extra(f"task-dup-{i + 1:02d}", texts[i][0], "heal", times[i], description=texts[i][1])
        label("stale-queue", "duplicate", "task-dup-01", times[1])

    # -- usage-spikes: the runaway loop, and the timeout fault's own usage effect
    if on("spike") and storm:
        inject("usage-spikes", "spike", "task_type:impl", storm_from)
    if on("spike") and faults.timeout_type:
        kind_type, t0, _ = faults.timeout_type
        inject("usage-spikes", "spike", f"task_type:{kind_type}", t0)
    # the usage as it was before the task outlier below (the spike labeller judges it)
    spike_metrics = list(p.metrics)
    if on("task-outlier"):
        lo_ts, hi_ts = p.ts(H - 20 * hour), p.ts(H - 6 * hour)
        picks = [
            i for i, m in enumerate(p.metrics)
            if m["task_type"] == "impl" and m["status"] == "completed"
            and lo_ts <= m["created_at"] <= hi_ts
        ]  # fmt: skip
        if picks:
            i = picks[len(picks) // 2]
            m = p.metrics[i] = dict(p.metrics[i])
            p_in, p_out = _PRICE[m["model"]]
            m["tokens_in"] *= 25
            m["tokens_out"] *= 25
            m["api_calls"] *= 8
            m["cost_usd"] = round((m["tokens_in"] * p_in + m["tokens_out"] * p_out) / 1e6, 5)
            labels.append(
                Label("usage-spikes", "task-outlier", f"task:{m['task_id']}", m["created_at"])
            )

    # -- files: specs and the repository
    repo = workspace / "repo"
    specs_dir = repo / "specs"
    if repo.exists():
        shutil.rmtree(repo)
    specs_dir.mkdir(parents=True)
    _touch(repo / "api/app/main.py", "app = None\n", start)
    drift: dict[int, str] = {}

    rerun = {t.spec_no for t in p.tasks.values() if not t.followup}

    def choose(attr: str, lo: float, hi: float) -> _Spec | None:
        cands = [
            s for s in p.specs.values()
            if s.no not in drift and s.no not in rerun
            and getattr(s, attr) is not None and lo <= getattr(s, attr) <= hi
        ]  # fmt: skip
        return cands[int(rng.integers(len(cands)))] if cands else None

    drift_plan = [
        ("template", "written", H - 26 * hour, H - 2 * hour),
        ("untestable", "written", H - 26 * hour, H - 2 * hour),
        ("missing-file", "impl_done", H - 26 * hour, H - 2 * hour),
        ("unrequested-change", "impl_done", H - 26 * hour, H - 2 * hour),
        ("stale-spec", "chain_done", H - 6 * 86400, H - 2 * 86400),
    ]
    for dkind, attr, lo, hi in drift_plan:
        if on(dkind):
            s = choose(attr, lo, hi) or choose(attr, 0.0, H)
            if s is not None:
                drift[s.no] = dkind
                began = H - 10 * hour if dkind == "stale-spec" else float(getattr(s, attr))
                label("spec-drift", dkind, s.path, began)
    impl_of = {t.spec_no: t for t in p.tasks.values() if t.task_type == "impl" and t.followup}
    spec_rng = np.random.default_rng(seed + 1)
    for s in p.specs.values():
        if s.written is None:
            continue
        spec_kind = drift.get(s.no, "")
        drop = {"template": "empty:Purpose", "untestable": "Acceptance Tests"}.get(spec_kind)
        _touch(specs_dir / s.path, _spec_text(s, spec_rng, drop=drop), p.at(s.written))
        if s.impl_done is None:
            continue
        for i, (path, what) in enumerate(s.files):
            if spec_kind == "missing-file" and i == 1:
                continue
            changed = H - 10 * hour if spec_kind == "stale-spec" and i == 0 else s.impl_done
            _touch(repo / path, f'"""{what}."""\n', p.at(changed))
        if spec_kind == "unrequested-change" and s.no in impl_of:
            impl_of[s.no].files_changed = [f for f, _ in s.files] + ["api/app/main.py"]
            _touch(repo / "api/app/main.py", "app = None  # touched\n", p.at(s.impl_done))

    # -- tests
    tplan = _TestPlan()
    n_tests = int(min(300, max(120, 60 + 2 * tasks_per_day)))
    if on("flaky"):
        tplan.flaky = (3, H - 4 * 86400)
    if on("broken"):
        tplan.broken = (5, H - 26 * hour)
    if on("holdout"):
        tplan.holdout = (7, H - 15 * 86400)
    test_rows, catalog, first = _test_runs(p, seed, tplan)
    assert n_tests == len(catalog)
    for kind, plan_item in (
        ("flaky", tplan.flaky),
        ("broken", tplan.broken),
        ("holdout", tplan.holdout),
    ):
        if plan_item and kind in first:
            cls, name = catalog[plan_item[0]]
            at = first[kind] + (14 * 86400 if kind == "holdout" else 0)
            label("flaky-tests", kind, f"{cls}::{name}", at)

    # -- the broken executor (the labeller judges every scope it drove past the breaker)
    if faults.broken:
        dim, name, t0, _ = faults.broken
        inject("stuck-phases", "error-rate", f"{dim}:{name}", t0)

    # -- priorities, review-audit, test-health, backlog-hygiene: one example of each kind
    # (reviewer/sim/review.py); the kinds judged from the records are injections
    review_kinds = {k for rk in wanted if rk in REVIEW_KINDS for k in rk[1:]}
    examples = review_problems(p.at(H), review_kinds, np.random.default_rng(seed + 2))
    examples.write_files(repo_dir=repo, specs_dir=specs_dir)
    extra_tasks.extend(examples.tasks)
    test_rows.extend(examples.test_results)
    for rule, kind, subject, since in examples.labels:
        labels.append(Label(rule, kind, subject, since))
    for rule, kind, subject, since in examples.injections:
        injections.append(Injection(rule, kind, subject, since))
    if on("failure-signature") and faults.timeout_type:
        # the injected test timeouts; every signature is judged from the records
        inject("backlog-hygiene", "failure-signature", "task_type:test", faults.timeout_type[1])

    # -- rows
    task_rows = [_task_row(p, t) for t in p.tasks.values() if t.created <= H]
    p.metrics.sort(key=lambda m: m["created_at"])

    # -- budget, goals
    # today: since 00:00 UTC of the last day, as usage-spikes counts a daily budget
    final = p.at(H)
    day0 = H - (final - final.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()
    day0_ts = p.ts(day0)
    today = [(m["created_at"], m["cost_usd"]) for m in p.metrics if m["created_at"] >= day0_ts]
    daily: dict[str, float] = {}
    for m in p.metrics:
        daily[m["created_at"][:10]] = daily.get(m["created_at"][:10], 0.0) + m["cost_usd"]
    rule_options: dict[str, dict[str, Any]] = {}
    if on("budget") and today:
        # a budget below what this pipeline spends: today's spend passes it, and
        # so may yesterday's, which is when the problem began
        budget = round(0.7 * sum(c for _, c in today), 2)
        spent: dict[str, float] = {}
        for m in p.metrics:
            if m["_t"] >= day0 - 86400:
                day = m["created_at"][:10]
                spent[day] = spent.get(day, 0.0) + m["cost_usd"]
                if spent[day] > budget:
                    labels.append(Label("usage-spikes", "budget", "all", m["created_at"]))
                    break
    else:
        budget = round(1.5 * max(daily.values(), default=1.0), 2)
    rule_options["usage-spikes"] = {"daily_budget_usd": budget}
    goals = _goal_tables(p, wanted, label)
    if on("stalled") and faults.stopped_goal:
        gid = faults.stopped_goal[0]
        moved = [
            x
            for t in p.tasks.values()
            if t.goal == gid and t.created <= H
            for x in (t.started, t.finished)
            if x is not None
        ]
        last = max(moved, default=H - 9.5 * 86400)
        extra(
            "task-goal-01", "Render goal progress bars on the dashboard", "impl", last - 7200,
            goal_id=gid, status="failed", attempts=2, started_at=p.ts(last - 2400),
            finished_at=p.ts(last - 600), updated_at=p.ts(last - 600),
            error="AssertionError: progress bar width 0 for goal with target",
        )  # fmt: skip
        label("goal-progress", "stalled", f"goal:{gid}", last + 7 * 86400)

    # -- stale-queue starved: an impl task the scheduler keeps skipping while newer impl
    # work of no higher priority starts; created as late as lets >= 5 of them pass it
    if on("starved"):
        rows = task_rows + extra_tasks
        created, starved_from = H - 20 * hour, None
        for back in range(20, 97, 4):
            created = H - back * hour
            starved_from = _starved_at(p, rows, "impl", created, "normal")
            if starved_from is not None and starved_from <= H - 4 * hour:
                break
        extra(
            "task-starved-01", "Batch the SQLite writes of the metrics store", "impl", created,
            description="Writes to the metrics store take seconds at peak hours; batch them. "
            "Needs the metrics database fixture, which no worker has, so workers skip it.",
        )  # fmt: skip
        if starved_from is not None:
            label("stale-queue", "starved", "task-starved-01", starved_from)
    # -- stuck-phases stalled-phase: the injected outage, from when its ready work has waited
    # a whole 6h window with nothing leaving the phase. A stuck task is its own problem
    # (labelled stuck), and a quiet phase that waits overnight is not an outage.
    if faults.stalled_phase is not None:
        stalled, outage = faults.stalled_phase
        inject("stuck-phases", "stalled-phase", f"phase:{stalled}", outage)

    task_rows.extend(extra_tasks)
    store.upsert_tasks(task_rows)
    store.upsert_metrics(p.metrics)
    store.upsert_test_results(test_rows)
    if examples.coverage:
        store.upsert_coverage(examples.coverage)
    labels.sort(key=lambda x: (x.rule, x.kind, x.subject))
    return Labels(
        labels=labels,
        injections=injections,
        record=SimRecord(
            pipeline=p,
            task_rows=task_rows,
            spike_metrics=spike_metrics,
            breaker_since=H - 30 * hour if wanted else None,
        ),
        start=start,
        end=p.at(H),
        specs_dir=specs_dir,
        repo_dir=repo,
        rule_options=rule_options,
        goals=goals,
        counts={
            "tasks": len(task_rows),
            "metrics": len(p.metrics),
            "test_results": len(test_rows),
            "specs": sum(1 for s in p.specs.values() if s.written is not None),
        },
    )


def _goal_tables(
    p: _Pipeline, wanted: set[tuple[str, str]], label: Any
) -> dict[str, dict[str, Any]]:
    """``[goals.<id>]`` tables for the history: on track, or stalled / at risk when injected.

    Progress counts completed tasks linked by ``goal_id``; the target is a number of them.
    This is the one place that knows the goal config's shape, so it can follow
    rules/goal_progress.py when that rule settles it.
    """
    H = p.horizon
    done: dict[str, list[float]] = {g: [] for g in GOALS}
    for t in p.tasks.values():
        if t.status == "completed" and t.goal in done and t.finished is not None:
            done[t.goal].append(t.finished)
    tables: dict[str, dict[str, Any]] = {}
    for gid, title in GOALS.items():
        finished = sorted(done[gid])
        pace = sum(1 for f in finished if f >= H - 14 * 86400) / 14.0
        table: dict[str, Any] = {
            "title": title,
            "target": int(len(finished) + pace * 14 * 0.35) + 1,
            "deadline": p.ts(H + 14 * 86400),
        }
        if gid == "g-selfheal" and ("goal-progress", "at-risk") in wanted:
            table["target"] = int(len(finished) + max(pace, 1.0) * 4 * 3) + 1
            table["deadline"] = p.ts(H + 4 * 86400)
            label("goal-progress", "at-risk", f"goal:{gid}", H - 2 * 86400)
        tables[gid] = table
    return tables


_FINAL = ("completed", "failed", "cancelled")
_RUN_STATES = (*_FINAL, "running")


def _secs(p: _Pipeline, ts: str) -> float:
    return (
        datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) - p.start
    ).total_seconds()


def _starved_at(
    p: _Pipeline, rows: list[dict[str, Any]], task_type: str, created: float, priority: str
) -> float | None:
    """When a pending task of ``task_type`` created at ``created`` becomes starved.

    Starved, as stale-queue documents it: waiting 6h, with at least 5 newer tasks of
    the same task_type and phase and no higher priority started ahead of it.
    """
    since = p.ts(created)
    starts = sorted(
        str(r["started_at"] or r["finished_at"])
        for r in rows
        if r["task_type"] == task_type and r["phase"] in (task_type, None)
        and r["created_at"] > since and r["status"] in _RUN_STATES
        and _RANK[r["priority"] or "normal"] <= _RANK[priority]
        and (r["started_at"] or r["finished_at"]) and (r["started_at"] or r["finished_at"]) >= since
    )  # fmt: skip
    if len(starts) < 5:
        return None
    return max(created + 6 * 3600.0, _secs(p, starts[4]))
