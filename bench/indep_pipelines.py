"""A second, independently written family of pipeline histories for ``bench/quality.py``.

Written without reading ``reviewer/simulate.py`` or any rule's code or options:
only the CONTRACT's record formats and the rules' user documentation (module
docstrings / README rule reference). ``bench/indep_labels.py`` says, from these
records alone, when each problem held by the documented definitions.

A history is a four-week pipeline of five phases with very different
throughput (triage, design, build, verify, deploy), Poisson arrivals with a
diurnal and a weekly intensity profile, two holidays (one in the replayed
window), bursts of tasks filed at once, finite worker pools per phase (FIFO),
log-normal run times and token counts, retries after failures with varied
error texts, a JUnit-like CI history and two goals. ``problems=False`` gives the
clean twin: the same seed gives the same base history, and only the injected
problems differ. Healthy behaviour is bounded on purpose (run times, tokens and
bursts are truncated, see the constants), so that a clean twin holds no problem
by any documented definition; the labeller checks that.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

UTC = UTC
# The history ends on a Tuesday afternoon; Monday before it is a company holiday
# (quiet, like a weekend), and Whit Monday two weeks earlier is another.
END = datetime(2026, 6, 9, 17, 0, tzinfo=UTC)
HOLIDAYS = {datetime(2026, 6, 8).date(), datetime(2026, 5, 25).date()}


def ts(t: datetime) -> str:
    """The store's one timestamp form."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the pipeline's shape --------------------------------------------------------------
@dataclass(frozen=True)
class TaskType:
    name: str
    phase: str
    share: float  # of all arrivals
    median_min: float  # median run time, minutes
    sigma: float  # log-normal spread of run time
    tokens_in: float  # median tokens in
    fail_rate: float  # chance a run fails (then it is retried)


TYPES = [
    TaskType("triage", "triage", 0.38, 2.5, 0.6, 3500, 0.02),
    TaskType("spec", "design", 0.06, 35.0, 0.7, 28000, 0.03),
    TaskType("impl", "build", 0.24, 22.0, 0.9, 70000, 0.06),
    TaskType("heal", "build", 0.05, 14.0, 0.8, 40000, 0.08),
    TaskType("test", "verify", 0.13, 6.0, 0.5, 9000, 0.05),
    TaskType("review", "verify", 0.10, 11.0, 0.6, 24000, 0.02),
    TaskType("deploy", "deploy", 0.04, 9.0, 0.4, 2500, 0.03),
]
BY_NAME = {t.name: t for t in TYPES}
PHASES = ["triage", "design", "build", "verify", "deploy"]
SERIAL = {"design", "deploy"}
# A healthy run never exceeds exp(mu + RUN_Z_MAX * sigma) (about 2.2x its p95 at the
# widest spread) nor RUN_MAX; a stuck task is a problem, not noise.
RUN_Z_MAX = 2.5
RUN_MAX = timedelta(hours=4)
TOKEN_SIGMA = 0.45
TOKEN_Z_MAX = 3.0
# model: (share, $ per 1k tokens in, $ per 1k out, token multiplier)
MODELS = {
    "sonnet-ish-4": (0.5, 0.003, 0.015, 1.0),
    "haiku-ish-3": (0.3, 0.0008, 0.004, 0.8),
    "opus-ish-4": (0.2, 0.015, 0.075, 1.3),
}
EXECUTORS = {"k8s-a": 0.4, "k8s-b": 0.35, "vm-legacy": 0.25}
ERRORS = [
    "AssertionError: expected 200, got 503",
    "tool call failed: git push rejected (non-fast-forward)",
    "ValueError: could not parse model output as JSON",
    "rate limited by provider (429), giving up after 3 retries",
    "merge conflict in {file}",
    "sandbox OOM-killed (exit 137)",
    "command timed out after 900s",  # healthy pipelines see a few timeouts too
]
FILES = ["billing/invoice.py", "api/routes.py", "web/app.tsx", "infra/main.tf", "docs/setup.md"]
COMPONENTS = [
    "invoice exporter",
    "webhook sender",
    "search indexer",
    "login form",
    "rate limiter",
    "audit log",
    "CSV importer",
    "email digest",
    "feature flags",
    "session store",
    "payment retries",
    "pdf renderer",
    "user settings page",
    "cache warmer",
    "sitemap",
]
VERBS = {
    "triage": ["Triage report about the", "Classify incoming bug in the", "Reproduce issue in the"],
    "spec": ["Write spec for the", "Specify limits of the", "Design the"],
    "impl": ["Implement", "Add pagination to the", "Refactor the", "Port to async the"],
    "heal": ["Fix failing build of the", "Repair flaky setup of the"],
    "test": ["Write integration tests for the", "Add property tests to the"],
    "review": ["Review changes to the", "Security review of the"],
    "deploy": ["Deploy", "Roll back canary of the", "Promote to production the"],
}


def intensity(t: datetime) -> float:
    """Relative arrival rate at ``t`` (1.0 = a weekday working-hour peak)."""
    if t.date() in HOLIDAYS:
        day = 0.12
    elif t.weekday() >= 5:
        day = 0.2
    else:
        day = 1.0
    h = t.hour + t.minute / 60
    # working hours in Europe/US east: 07-19 UTC strong, a long tail, quiet nights
    hour = 0.08 + 0.92 * math.exp(-(((h - 13.0) / 4.2) ** 2))
    return day * hour


# -- one history -----------------------------------------------------------------------
@dataclass
class History:
    """Records of one generated history, in the CONTRACT's shapes, and what was injected."""

    seed: int
    tasks_per_day: int
    problems: bool
    start: datetime
    end: datetime
    tasks: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    tests: list[dict[str, Any]] = field(default_factory=list)
    goals: dict[str, dict[str, Any]] = field(default_factory=dict)
    daily_budget_usd: float = 0.0
    injected: dict[str, str] = field(default_factory=dict)  # kind -> subject (for reading)

    def store_rows(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """Tasks, metrics and test results as the store's columns (timestamps as text)."""

        def row(r: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for k, v in r.items():
                if k.startswith("_"):
                    continue
                if isinstance(v, datetime):
                    out[k] = ts(v)
                elif isinstance(v, list):
                    out[k] = json.dumps(v)
                else:
                    out[k] = v
            return out

        return (
            [row(t) for t in self.tasks],
            [row(m) for m in self.metrics],
            [row(r) for r in self.tests],
        )

    def write(self, store: Any) -> None:
        """Insert the records through the store's public upsert API."""
        tasks, metrics, tests = self.store_rows()
        store.upsert_tasks(tasks)
        store.upsert_metrics(metrics)
        store.upsert_test_results(tests)

    def config(self, store_url: str, workdir: str) -> dict[str, Any]:
        """The config a user of this pipeline would write: defaults plus goals and a budget."""
        return {
            "reviewer": {"store": store_url, "specs_dir": f"{workdir}/specs", "repo_dir": workdir},
            "rules": {"usage-spikes": {"daily_budget_usd": self.daily_budget_usd}},
            "goals": self.goals,
        }


class _Gen:
    def __init__(self, seed: int, tasks_per_day: int, days: int) -> None:
        self.seed = seed
        self.rate = tasks_per_day
        self.end = END
        self.start = END - timedelta(days=days)
        self.rng = random.Random(f"indep-base-{seed}-{tasks_per_day}")
        self.tasks: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self.n = 0
        self.peak = 0.0
        self.budget_usd = 0.0
        self.dead: dict[str, datetime] = {}

    # arrivals -------------------------------------------------------------------------
    def arrivals(self) -> list[datetime]:
        """Non-homogeneous Poisson arrivals by thinning, plus bursts filed at once."""
        rng = self.rng
        # peak hourly rate so that a typical weekday yields about ``rate`` tasks (the
        # weekly average, holidays and weekends included, is lower)
        mean_day = (
            sum(
                intensity(datetime(2026, 6, 2, tzinfo=UTC) + timedelta(minutes=10 * k))
                for k in range(144)
            )
            / 6
        )
        peak = self.rate / mean_day  # tasks per hour at intensity 1
        out: list[datetime] = []
        t = self.start
        while True:
            t += timedelta(hours=rng.expovariate(peak))
            if t >= self.end:
                break
            if rng.random() < intensity(t):
                out.append(t)
        # bursts: about twice a week on working hours, half an hour's peak arrivals at once
        day = self.start
        while day < self.end:
            if day.weekday() < 5 and day.date() not in HOLIDAYS and rng.random() < 0.4:
                at = day.replace(hour=rng.randint(8, 16), minute=rng.randint(0, 59))
                size = max(2, round(0.5 * peak))
                if at < self.end - timedelta(hours=2):
                    out.extend(at + timedelta(seconds=5 * i) for i in range(size))
            day += timedelta(days=1)
        out.sort()
        self.peak = peak
        return out

    def new_task(self, ttype: TaskType, created: datetime, **kw: Any) -> dict[str, Any]:
        rng = self.rng
        self.n += 1
        comp = rng.choice(COMPONENTS)
        verb = rng.choice(VERBS[ttype.name])
        ticket = rng.randint(100, 9999)
        task: dict[str, Any] = {
            "id": f"{ttype.phase[:3]}-{self.n:06d}",
            "title": f"{verb} {comp} (#{ticket})",
            "description": f"Ticket {ticket}: {verb.lower()} {comp}; owner team "
            f"{rng.choice(['core', 'growth', 'infra', 'payments'])}.",
            "task_type": ttype.name,
            "phase": ttype.phase,
            "status": "pending",
            "priority": rng.choices(["low", "normal", "high", "critical"], [1, 8, 2, 0.3])[0],
            "created_at": created,
            "updated_at": created,
            "started_at": None,
            "finished_at": None,
            "attempts": 0,
            "depends_on": [],
            "goal_id": None,
            "spec": None,
            "labels": [],
            "model": None,
            "executor": None,
            "error": None,
            "source": "planner",
        }
        task.update(kw)
        return task

    def run_time(self, ttype: TaskType) -> timedelta:
        z = self.rng.gauss(0, 1)
        while abs(z) > RUN_Z_MAX:
            z = self.rng.gauss(0, 1)
        minutes = ttype.median_min * math.exp(ttype.sigma * z)
        return min(timedelta(minutes=minutes), RUN_MAX)

    def usage(
        self, ttype: TaskType, model: str, scale: float = 1.0, zmax: float = TOKEN_Z_MAX
    ) -> dict[str, Any]:
        _, pin, pout, mult = MODELS[model]

        def ln() -> float:
            z = self.rng.gauss(0, 1)
            while abs(z) > zmax:
                z = self.rng.gauss(0, 1)
            return math.exp(TOKEN_SIGMA * z)

        tin = int(ttype.tokens_in * mult * ln() * scale)
        tout = int(tin * 0.18 * ln())
        return {
            "tokens_in": tin,
            "tokens_out": tout,
            "cost_usd": round(tin / 1000 * pin + tout / 1000 * pout, 5),
            "api_calls": max(1, int(tin / 6000) + self.rng.randint(0, 3)),
        }

    def pick(self, table: dict[str, Any]) -> str:
        names = list(table)
        weights = [v[0] if isinstance(v, tuple) else v for v in table.values()]
        return self.rng.choices(names, weights)[0]

    # the base history -----------------------------------------------------------------
    def base(self) -> None:
        rng = self.rng
        times = self.arrivals()
        last_build: dict[str, Any] | None = None
        for at in times:
            ttype = rng.choices(TYPES, [t.share for t in TYPES])[0]
            task = self.new_task(ttype, at)
            if ttype.phase == "build":
                last_build = task
            elif ttype.phase in ("verify", "deploy") and last_build and rng.random() < 0.3:
                task["depends_on"] = [last_build["id"]]
            self.tasks.append(task)
        self.schedule(self.tasks)

    def workers(self, phase: str) -> int:
        """Worker slots per phase: about 3x the peak-hour need, at least 2.

        Design and deploy are run by as few workers as carry their peak load (one, at low
        throughput: a design agent, serial deploys), so work there queues behind a long run.
        """
        need = sum(t.share * self.peak * t.median_min * 1.4 / 60 for t in TYPES if t.phase == phase)
        if phase in SERIAL:
            return max(1, math.ceil(1.5 * need))
        return max(2, math.ceil(3 * need))

    def schedule(self, tasks: list[dict[str, Any]]) -> None:
        """Run tasks FIFO on each phase's worker pool; fill runs, retries and metrics."""
        rng = self.rng
        by_id = {t["id"]: t for t in self.tasks}
        for phase in PHASES:
            pool = [self.start] * self.workers(phase)
            heapq.heapify(pool)
            mine = [t for t in tasks if t["phase"] == phase and t["status"] == "pending"]

            def ready(t: dict[str, Any]) -> datetime:
                deps = [by_id[d] for d in t["depends_on"] if d in by_id]
                ends = [d["finished_at"] for d in deps if d["finished_at"]]
                return max([t["created_at"], *ends])

            for task in sorted(mine, key=ready):
                if "on-hold" in task["labels"] or task.get("_keep_pending"):
                    continue
                at = ready(task)
                free = heapq.heappop(pool)
                begin = max(at, free) + timedelta(seconds=rng.randint(5, 90))
                if begin >= self.end:
                    heapq.heappush(pool, free)
                    continue
                finish = self.execute(task, begin)
                heapq.heappush(pool, finish)

    def execute(self, task: dict[str, Any], begin: datetime, force_fail: int = 0) -> datetime:
        """One task's runs from ``begin``: failed runs are retried up to 3 times."""
        rng = self.rng
        ttype = BY_NAME[task["task_type"]]
        task["model"] = task["model"] or self.pick(MODELS)
        task["executor"] = task["executor"] or self.pick(EXECUTORS)
        task["started_at"] = begin
        t = begin
        attempt = 0
        while True:
            attempt += 1
            took = self.run_time(ttype)
            failed = rng.random() < ttype.fail_rate
            if t + took > self.end:  # still running at the end of the history
                task["status"], task["attempts"] = "running", attempt
                task["updated_at"] = t
                return self.end
            t += took
            err = rng.choice(ERRORS).format(file=rng.choice(FILES)) if failed else None
            self.metric(task, t, took, err)
            if not failed:
                task.update(status="completed", finished_at=t, updated_at=t, attempts=attempt)
                return t
            task["error"] = err
            if attempt >= 2:  # healthy pipelines give up after 2 runs, never 3
                task.update(status="failed", finished_at=t, updated_at=t, attempts=attempt)
                return t
            t += timedelta(seconds=rng.randint(20, 240))  # backoff, then the retry

    def metric(
        self,
        task: dict[str, Any],
        at: datetime,
        took: timedelta,
        error: str | None,
        scale: float = 1.0,
        zmax: float = TOKEN_Z_MAX,
        usage: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record one finished run of ``task`` at ``at``."""
        # two runs of one task never share a second (the metrics' key)
        while any(m["created_at"] == at for m in task.setdefault("_runs", [])):
            at += timedelta(seconds=1)
        m = {
            "task_id": task["id"],
            "task_type": task["task_type"],
            "model": task["model"],
            "executor": task["executor"],
            "duration_seconds": round(took.total_seconds(), 1),
            "status": "failed" if error else "completed",
            "created_at": at,
            "error": error,
            **(usage or self.usage(BY_NAME[task["task_type"]], task["model"], scale, zmax)),
        }
        task["_runs"].append(m)
        self.metrics.append(m)
        return m


# -- CI history ------------------------------------------------------------------------
TEST_CLASSES = [
    "com.acme.billing.InvoiceServiceTest",
    "com.acme.billing.TaxRulesTest",
    "com.acme.api.OrderControllerIT",
    "com.acme.api.AuthFilterTest",
    "com.acme.search.IndexerTest",
    "com.acme.search.QueryParserTest",
    "com.acme.web.CheckoutFlowIT",
    "com.acme.infra.RetryPolicyTest",
]
TEST_NAMES = [
    "testRoundsHalfEven",
    "rejectsExpiredToken",
    "handlesEmptyCart",
    "retriesOn503",
    "parsesQuotedPhrase",
    "indexesUnicode",
    "computesVatForEu",
    "pagesThroughResults",
    "refusesDuplicateOrder",
    "streamsLargeExport",
    "keepsSessionAcrossRedirect",
    "appliesBackoffJitter",
    "buildsSitemap",
    "timesOutSlowUpstream",
]
FLAKE_MESSAGES = [
    "java.net.SocketTimeoutException: Read timed out",
    "org.opentest4j.AssertionFailedError: expected: <3> but was: <2>",
    "java.util.ConcurrentModificationException",
    "org.awaitility.core.ConditionTimeoutException: Condition not met within 5 seconds",
    "Connection refused: localhost/127.0.0.1:5432",
]


def ci_history(gen: _Gen, problems: bool) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """JUnit-like CI runs; with problems, flaky, broken and skipped tests are injected."""
    rng = random.Random(f"indep-ci-{gen.seed}-{gen.rate}")
    tests = [f"{c}::{n}" for c in TEST_CLASSES for n in rng.sample(TEST_NAMES, 9)]
    runs_per_day = min(30, max(4, gen.rate // 25))
    # CI runs follow working hours like the tasks do; a commit gets 1-3 runs (reruns)
    runs: list[tuple[datetime, str]] = []
    t = gen.start
    commit = 0
    while t < gen.end:
        t += timedelta(hours=rng.expovariate(runs_per_day / 24 / 0.45))
        if t < gen.end and rng.random() < max(0.25, intensity(t)):
            if rng.random() < 0.6:
                commit += 1
            runs.append((t, f"{commit:07x}{gen.seed:x}"))
    injected: dict[str, str] = {}
    proven_run = -1
    if problems:
        # somebody pressed "rerun" on a red build today: same commit, 25 minutes later
        proven_run = next(
            (i for i, (at, _) in enumerate(runs) if at > gen.end - timedelta(hours=20)),
            len(runs) - 2,  # no CI run today: the last-but-one of the history
        )
        at, sha = runs[proven_run]
        runs.insert(proven_run + 1, (at + timedelta(minutes=25), sha))
    flaky_rate: dict[str, float] = {}
    broken_from: datetime | None = None
    skipped_since: dict[str, datetime] = {}
    if problems:
        # flake rates from a heavy-tailed spread (median 0.5%, most under 5%), plus one
        # that shows both outcomes on one commit inside the replayed window
        chosen = rng.sample(tests, 5)
        for name, p in zip(chosen[:3], [0.004, 0.03, 0.25], strict=True):
            flaky_rate[name] = p
        injected["flaky"] = chosen[2]
        injected["flaky-proven"] = chosen[3]
        injected["broken"] = chosen[4]
        # the break comes with a new commit: the first run of a fresh commit 14h ago or
        # later, and early enough that at least five runs have failed by the end
        latest = runs[-5][0]
        broken_from = next(
            (
                at
                for i, (at, sha) in enumerate(runs)
                if at > min(gen.end - timedelta(hours=14), latest - timedelta(hours=12))
                and sha != runs[i - 1][1]
            ),
            runs[-5][0],
        )
        holdout = next(x for x in tests if x not in chosen)
        skipped_since[holdout] = gen.end - timedelta(days=18)
        injected["holdout"] = holdout
    # in both twins: a test skipped only for the last 3 days (not yet a holdout)
    recent_skip = tests[-1]
    skipped_since[recent_skip] = gen.end - timedelta(days=3)
    rows: list[dict[str, Any]] = []
    for i, (at, sha) in enumerate(runs):
        run_id = f"ci-{i + 1:05d}"
        for name in tests:
            cls, meth = name.split("::")
            outcome, msg = "passed", None
            if name in skipped_since and at >= skipped_since[name]:
                outcome, msg = "skipped", "@Disabled: tracked in JIRA-4411"
            elif name in flaky_rate and rng.random() < flaky_rate[name]:
                outcome, msg = "failed", rng.choice(FLAKE_MESSAGES)
            elif problems and name == injected.get("broken") and broken_from and at >= broken_from:
                outcome, msg = "failed", "expected: <EUR 10.00> but was: <EUR 10.01>"
            elif name == injected.get("flaky-proven") and i == proven_run:
                outcome, msg = "failed", "java.net.SocketTimeoutException: Read timed out"
            rows.append(
                {
                    "run_id": run_id,
                    "test_id": name,
                    "classname": cls,
                    "name": meth,
                    "commit_sha": sha,
                    "branch": "main",
                    "outcome": outcome,
                    "duration_seconds": round(rng.lognormvariate(-1.5, 0.8), 3),
                    "message": msg,
                    "file": None,
                    "ran_at": at,
                }
            )
    return rows, injected


# -- injections ------------------------------------------------------------------------
def inject(gen: _Gen, injected: dict[str, str]) -> None:
    """Add one problem of each kind the rules document, at known subjects, to the last day."""
    rng = random.Random(f"indep-inject-{gen.seed}-{gen.rate}")
    end = gen.end
    tasks = gen.tasks
    add: list[dict[str, Any]] = []

    # stale: a high task filed 4 days ago and never touched (limit for high: 3d)
    # (its own task type and no phase: a decision for a human, nothing competes with it)
    stale = gen.new_task(
        BY_NAME["spec"],
        end - timedelta(days=4, hours=3),
        priority="high",
        task_type="decision",
        phase=None,
        title="Decide retention period for audit log exports",
        description="Legal asked for a number; nobody picked it up.",
    )
    stale["_keep_pending"] = True
    add.append(stale)
    injected["stale"] = stale["id"]

    # duplicate: two open impl tasks asking for the same change (on hold, so not starved)
    d1 = gen.new_task(
        BY_NAME["impl"],
        end - timedelta(hours=20),
        labels=["on-hold"],
        phase=None,
        title="Add retry with exponential backoff to the webhook sender",
        description="Webhook deliveries fail on transient 503s; retry with "
        "exponential backoff and jitter.",
    )
    d2 = gen.new_task(
        BY_NAME["impl"],
        end - timedelta(hours=15),
        labels=["on-hold"],
        phase=None,
        title="Webhook sender: add retries with exponential backoff",
        description="Retry webhook deliveries on transient 503s with "
        "exponential backoff and jitter.",
    )
    add += [d1, d2]
    injected["duplicate"] = d1["id"]

    # starved: a normal impl task passed over by later impl tasks of its phase
    build = sorted(
        (
            t
            for t in tasks
            if t["task_type"] == "impl" and t["started_at"] and t["priority"] in ("normal", "low")
        ),
        key=lambda t: t["started_at"],
    )
    # created so that at least 8 newer impl tasks started ahead of it before the window
    cutoff = end - timedelta(hours=30)
    before = [t for t in build if t["started_at"] < cutoff]
    anchor = before[-8]["created_at"] if len(before) >= 8 else cutoff - timedelta(days=5)
    anchor = max(anchor - timedelta(minutes=3), end - timedelta(days=6))
    starved = gen.new_task(
        BY_NAME["impl"], anchor, priority="normal", title="Implement CSV importer header validation"
    )
    starved["_keep_pending"] = True
    add.append(starved)
    injected["starved"] = starved["id"]

    # stuck: a review task running since 11 hours ago (normal: minutes)
    stuck = gen.new_task(
        BY_NAME["review"],
        end - timedelta(hours=11, minutes=20),
        title="Review changes to the payment retries (#4242)",
    )
    stuck.update(
        status="running",
        started_at=stuck["created_at"] + timedelta(minutes=2),
        model="sonnet-ish-4",
        executor="k8s-b",
        attempts=1,
    )
    stuck["updated_at"] = stuck["started_at"]
    add.append(stuck)
    injected["stuck"] = stuck["id"]

    # repeated-failure: a deploy task that failed three runs in a row and gave up
    rep = gen.new_task(
        BY_NAME["heal"],
        end - timedelta(hours=9),
        title="Fix failing build of the search indexer after the v2 bump",
    )
    rep.update(
        model="haiku-ish-3", executor="k8s-a", started_at=rep["created_at"] + timedelta(minutes=1)
    )
    t = rep["started_at"]
    for _ in range(3):
        t += timedelta(minutes=rng.randint(40, 80))
        gen.metric(
            rep,
            t,
            timedelta(minutes=6),
            "helm upgrade failed: context deadline exceeded waiting for rollout",
        )
    rep.update(
        status="failed",
        finished_at=t,
        updated_at=t,
        attempts=3,
        error="helm upgrade failed: rollout never became ready",
    )
    add.append(rep)
    injected["repeated-failure"] = rep["id"]

    # error-rate: executor vm-legacy fails most runs for 5 hours (a bad host image),
    # across models and task types; extra retries so that even 5 tasks a day show it
    t0 = end - timedelta(hours=9)
    bad = "sandbox failed to start: overlayfs mount error on vm-legacy"
    by_id = {t["id"]: t for t in tasks}
    for m in gen.metrics:
        if (
            m["executor"] == "vm-legacy"
            and t0 <= m["created_at"] < t0 + timedelta(hours=5)
            and m["status"] == "completed"
            and rng.random() < 0.85
        ):
            m["status"], m["error"] = "failed", bad
            task = by_id[m["task_id"]]
            if task["finished_at"] == m["created_at"]:
                task.update(status="failed", error=bad)
    for k in range(14):
        ttype = BY_NAME[rng.choice(["impl", "test", "triage", "review"])]
        at = t0 + timedelta(minutes=20 * k + rng.randint(0, 5))
        task = gen.new_task(
            ttype, at - timedelta(minutes=2), executor="vm-legacy", model=list(MODELS)[k % 3]
        )
        task.update(started_at=at - timedelta(minutes=1))
        fails = rng.random() < 0.85
        gen.metric(task, at, timedelta(minutes=1), bad if fails else None)
        if fails:
            task.update(
                status="failed",
                finished_at=at,
                updated_at=at,
                attempts=1,
                error="sandbox failed to start",
            )
        else:
            task.update(status="completed", finished_at=at, updated_at=at, attempts=1)
        add.append(task)
    injected["error-rate"] = "executor:vm-legacy"

    # timeout-pattern: test runs start timing out today (a slow upstream), extra failed
    # runs before the task's own successful one
    tests_today = [
        m
        for m in gen.metrics
        if m["task_type"] == "test" and m["created_at"] > end - timedelta(hours=22)
    ]
    n_timeouts = max(7, len(tests_today) // 3)
    for k in range(n_timeouts):
        at = end - timedelta(hours=21) + timedelta(minutes=(20 * 60 // n_timeouts) * k)
        task = gen.new_task(BY_NAME["test"], at - timedelta(minutes=16))
        task.update(
            started_at=at - timedelta(minutes=15),
            model=list(MODELS)[k % 3],
            executor=rng.choice(["k8s-a", "k8s-b"]),
        )
        gen.metric(
            task,
            at,
            timedelta(minutes=15),
            "Timeout: test run exceeded 900s waiting for staging API",
        )
        ok = at + timedelta(minutes=9)
        if ok < end:
            gen.metric(task, ok, timedelta(minutes=7), None)
            task.update(status="completed", finished_at=ok, updated_at=ok, attempts=2)
        else:
            task.update(status="running", attempts=2, updated_at=at)
        add.append(task)
    injected["timeout-pattern"] = "task_type:test"

    # task-outlier: one impl run on sonnet that looped (40x the usual tokens)
    out = gen.new_task(
        BY_NAME["impl"], end - timedelta(hours=7), title="Refactor the rate limiter (#7777)"
    )
    out.update(
        model="sonnet-ish-4", executor="k8s-a", started_at=out["created_at"] + timedelta(minutes=1)
    )
    at = out["started_at"] + timedelta(minutes=50)
    gen.metric(out, at, timedelta(minutes=50), None, scale=40.0)
    out.update(status="completed", finished_at=at, updated_at=at, attempts=1)
    add.append(out)
    injected["task-outlier"] = f"task:{out['id']}"

    # spike: model opus-ish-4 rambles for 4 hours: every run uses 7x the tokens, and a
    # retry storm adds runs, spread over executors and task types
    s0 = (end - timedelta(hours=8)).replace(minute=0, second=0)
    per_hour = max(6, round(gen.peak * 0.6))
    for h in range(4):
        for _ in range(per_hour):
            at = s0 + timedelta(hours=h, minutes=rng.randint(0, 59), seconds=rng.randint(0, 59))
            ttype = BY_NAME[rng.choice(["impl", "spec", "review", "triage"])]
            task = gen.new_task(
                ttype,
                at - timedelta(minutes=10),
                model="opus-ish-4",
                executor=rng.choice(["k8s-a", "k8s-b"]),
            )
            task.update(started_at=at - timedelta(minutes=9))
            # a uniform ramble: 7x every run, without the spread that would make single
            # runs task-outliers of their own
            gen.metric(task, at, timedelta(minutes=9), None, scale=7.0, zmax=0.5)
            task.update(status="completed", finished_at=at, updated_at=at, attempts=1)
            add.append(task)
    injected["spike"] = "model:opus-ish-4"

    # budget: a one-off backfill job on a new executor and task type today
    job_cost = 0.0
    job = gen.budget_usd * 0.7
    j = 0
    while job_cost < job:
        j += 1
        at = end - timedelta(hours=6) + timedelta(minutes=4 * j)
        if at >= end:
            break
        # a new model, executor and task type: no history, so neither a spike nor an
        # outlier by definition; only the day's spend shows it
        task = gen.new_task(
            BY_NAME["triage"],
            at - timedelta(minutes=4),
            task_type="backfill",
            phase=None,
            model="embed-large-1",
            executor="batch-1",
            title=f"Backfill embeddings shard {j}",
        )
        task.update(started_at=at - timedelta(minutes=3))
        usage = {"tokens_in": 400000, "tokens_out": 0, "cost_usd": 6.0, "api_calls": 40}
        m = gen.metric(task, at, timedelta(minutes=3), None, usage=usage)
        job_cost += m["cost_usd"]
        task.update(status="completed", finished_at=at, updated_at=at, attempts=1)
        add.append(task)
    injected["budget"] = "all"

    # stalled-phase: deploy workers stop taking work 13 hours before the end; deploy
    # tasks filed after that wait (a few extra, so even 5 tasks a day show it)
    dead_at = end - timedelta(hours=13)
    for k in range(4):
        add.append(
            gen.new_task(
                BY_NAME["deploy"],
                dead_at + timedelta(minutes=30 + 40 * k),
                title=f"Deploy release 2026.6.{k + 1} to production",
            )
        )
    injected["stalled-phase"] = "phase:deploy"
    gen.dead = {"deploy": dead_at}
    tasks.extend(add)


def goals(gen: _Gen, problems: bool, injected: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Two goals: a migration whose items complete steadily, and a launch with a deadline.

    With problems the migration stops (its last item failed eight days ago and the rest
    wait) and the launch gains 60 more items than it can finish by its deadline.
    """
    rng = random.Random(f"indep-goals-{gen.seed}-{gen.rate}")
    end, first = gen.end, gen.start + timedelta(hours=2)
    items: list[dict[str, Any]] = []
    for k in range(12):
        t = gen.new_task(
            BY_NAME["spec"],
            first,
            phase=None,
            goal_id="db-migration",
            task_type="migration",
            priority="low",
            title=f"Migrate table {k + 1} of 12 to the new cluster",
        )
        items.append(t)
    # clean: one item every ~2 days, the last one 1 day before the end
    step = (end - timedelta(days=1) - first) / 11
    for k, t in enumerate(items):
        at = first + step * k
        if problems and at > end - timedelta(days=9):
            if k == 8:
                t.update(
                    status="failed",
                    started_at=end - timedelta(days=8, hours=6),
                    finished_at=end - timedelta(days=8),
                    attempts=1,
                    error="pg_dump: connection reset",
                    model="sonnet-ish-4",
                    executor="k8s-a",
                    updated_at=end - timedelta(days=8),
                )
            continue  # waits
        if at < end:
            t.update(
                status="completed",
                started_at=at - timedelta(minutes=40),
                finished_at=at,
                updated_at=at,
                attempts=1,
                model="sonnet-ish-4",
                executor="k8s-a",
            )
    launch: list[dict[str, Any]] = []
    for k in range(24):
        t = gen.new_task(
            BY_NAME["spec"],
            first + timedelta(minutes=5),
            phase=None,
            goal_id="mobile-launch",
            priority="low",
            task_type="checklist",
            title=f"Launch checklist item {k + 1}: {rng.choice(COMPONENTS)}",
        )
        launch.append(t)
    step = (end - timedelta(hours=6) - first) / 20
    for k, t in enumerate(launch[:20]):
        at = first + step * (k + 1)
        t.update(
            status="completed",
            started_at=at - timedelta(minutes=30),
            finished_at=at,
            updated_at=at,
            attempts=1,
            model="haiku-ish-3",
            executor="k8s-b",
        )
    if problems:
        for k in range(60):
            launch.append(
                gen.new_task(
                    BY_NAME["spec"],
                    end - timedelta(hours=20),
                    phase=None,
                    goal_id="mobile-launch",
                    priority="low",
                    task_type="checklist",
                    title=f"Launch localisation string set {k + 1}",
                )
            )
        injected["stalled"] = "goal:db-migration"
        injected["at-risk"] = "goal:mobile-launch"
    for t in items + launch:
        t["_keep_pending"] = True
    gen.tasks.extend(items + launch)
    return {
        "db-migration": {"title": "Move every table to the new cluster"},
        "mobile-launch": {
            "title": "Mobile app launch checklist",
            "deadline": (end + timedelta(days=10)).date().isoformat(),
        },
    }


def generate(seed: int, tasks_per_day: int, *, days: int = 28, problems: bool = True) -> History:
    """One history: the base pipeline, and with ``problems`` every documented kind injected."""
    gen = _Gen(seed, tasks_per_day, days)
    gen.base()
    by_day: dict[Any, float] = {}
    for m in gen.metrics:
        by_day[m["created_at"].date()] = by_day.get(m["created_at"].date(), 0.0) + m["cost_usd"]
    # a budget a team would set: a third above its dearest day so far
    gen.budget_usd = round(max(by_day.values()) * 1.35, 2)
    injected: dict[str, str] = {}
    goal_cfg = goals(gen, problems, injected)
    if problems:
        inject(gen, injected)
        # deploy workers are gone from ``dead_at``: what they started after it never ran
        dead_at = gen.dead["deploy"]
        undone = {
            t["id"]
            for t in gen.tasks
            if t["phase"] == "deploy" and t["started_at"] and t["started_at"] >= dead_at
        }
        gen.metrics = [m for m in gen.metrics if m["task_id"] not in undone]
        for t in gen.tasks:
            if t["id"] in undone:
                t.update(
                    status="pending",
                    started_at=None,
                    finished_at=None,
                    attempts=0,
                    model=None,
                    executor=None,
                    error=None,
                    updated_at=t["created_at"],
                )
                t["_runs"] = []
    tests, ci_injected = ci_history(gen, problems)
    injected.update(ci_injected)
    gen.metrics.sort(key=lambda m: m["created_at"])
    return History(
        seed=seed,
        tasks_per_day=tasks_per_day,
        problems=problems,
        start=gen.start,
        end=gen.end,
        tasks=gen.tasks,
        metrics=gen.metrics,
        tests=tests,
        goals=goal_cfg,
        daily_budget_usd=gen.budget_usd,
        injected=injected,
    )
