"""stuck-phases: work that stopped moving, and failures that keep repeating.

A pipeline that hangs does not say so: a task sits in ``running``, a phase
keeps taking work in and gives none back, executions start timing out, the
same task fails again and again, an executor or model fails most of what it
runs. Each costs a slot, money and time until a human notices. This rule
notices first and proposes the seed spec's remedies: heal, escalate, pause.

Kinds
-----
``stuck`` (subject: task id)
    A task running at ``now`` for longer than its phase's timeout. The timeout
    is the configured one for the task's phase (else its task_type); else it
    is learned: ``timeout_multiplier`` × the p95 run time of tasks of the same
    task_type and phase completed in ``history`` (at least ``min_samples`` of
    them, never below ``min_timeout``); else ``fallback_timeout`` (set it to
    "0s" to stay silent on work with too little history). Proposes a heal task.
``stalled-phase`` (subject: ``phase:<phase>``)
    A phase whose ready work waited the whole ``stall_window`` while improbably
    little left it, judged against the phase's own throughput. It holds at least
    ``min_open`` open tasks (running in it, or pending and ready for it: no
    dependency, or all completed), the oldest opened at least ``stall_window``
    ago, and none of its running tasks is within its timeout (a task running
    within its normal time is progress). The expected outflow of the window
    comes from the phase's ``history`` before it: tasks finished per hour of
    the week (UTC), each hour of the week shrunk toward the same hour of the
    day over all days (weight 1 hour), and that toward the phase's overall
    hourly rate (weight 2 hours), so quiet nights and weekends expect little.
    It fires when the Poisson chance of the observed outflow or less is below
    ``stall_chance``, over the last ``stall_window`` or over the whole time the
    oldest open task has waited (up to 7 days), whichever is less likely: a
    quiet phase shows a stall only over a longer wait. The finding states that
    chance and the expected and observed outflow. A phase that never finished
    a task expects nothing and is never stalled (stale-queue sees its waiting
    tasks). Stuck tasks of a stalled phase keep their own ``stuck`` findings;
    the stall names them in its evidence. Tasks without a phase are not
    counted.
``timeout-pattern`` (subject: ``task_type:<type>``)
    Executions failing by timeout (error text containing one of
    ``timeout_patterns``, any case) more often in the last ``timeout_window``
    than in the ``timeout_baseline`` before it: a one-sided Fisher exact test
    (as a share of failures, and as a share of runs; Bonferroni-corrected)
    below ``alpha``, at least ``min_timeouts`` timeouts, and timeouts at least
    ``min_timeout_share`` of the recent failures. Source: task metrics.
``repeated-failure`` (subject: task id)
    A task that failed ``max_failures`` times: failed with that many attempts,
    or that many failed runs since its last success while not completed or
    cancelled. The seed's dead letter: proposes escalation, not another retry.
``error-rate`` (subject: ``executor:<name>``, ``model:<name>`` or ``task_type:<name>``)
    An executor, model or task type (in ``error_scopes``) that failed more
    than ``max_error_rate`` of at least ``min_runs`` runs in ``error_window``
    (8 of 16 at 0.5 does not fire, 9 of 16 does): the seed's circuit breaker.
    Proposes pausing it (holding a task type's work), with a control that does
    so once approved (``pause executor:NAME`` or ``model:NAME``, ``hold
    task_type:NAME``; see "Controls"); severity "critical" at or
    above ``critical_error_rate``. The finding says how unusual it is: its
    failures against every other run of the window (one-sided Fisher exact
    p). The cause is the scope that stays anomalous once the other
    candidate's runs are left out: for each scope past the breaker, the scope
    of each other dimension carrying most of its failures is left out and the
    rest compared with the runs of neither (Fisher p below ``alpha``). An
    executor failing 12 of 22 runs where model m-alpha failed 8 of 13, mostly
    on it, is the cause when it still fails without m-alpha while m-alpha is
    normal without it: m-alpha is explained and not reported. When neither is
    anomalous without the other (every run of a failing task type ran on one
    executor), the data cannot tell them apart: one finding names both. When
    nothing normal is left to compare with, the worst scope is judged first
    and the rest without its runs.

Options (defaults shown)::

    [rules.stuck-phases]
    timeouts = {}                 # by phase or task_type, e.g. { impl = "2h", review = "30m" }
    timeout_multiplier = 3.0      # learned timeout = this × p95 run time of the group
    min_samples = 20              # completed tasks a group needs before its timeout is learned
    min_timeout = "10m"           # floor of a learned timeout
    fallback_timeout = "6h"       # neither configured nor learned; "0s" stays silent
    history = "30d"               # run times are learned from tasks completed this recently
    stuck_escalate_after = 3.0    # running this many times the timeout → severity "error"
    stall_window = "6h"           # ready work waited this long, and outflow in it is judged
    min_open = 3                  # running + ready pending tasks a stalled phase holds at least
    stall_chance = 0.001          # so little outflow must be at most this likely (Poisson tail)
    timeout_window = "24h"
    timeout_baseline = "7d"       # the window just before timeout_window
    timeout_patterns = ["timeout", "timed out", "deadline exceeded"]
    min_timeouts = 5
    min_timeout_share = 0.3
    min_baseline_runs = 20
    alpha = 0.01
    max_failures = 3
    error_window = "6h"
    max_error_rate = 0.5          # fires above this share of failed runs
    min_runs = 10
    critical_error_rate = 0.8
    error_scopes = ["executor", "model", "task_type"]  # what the breaker judges

Fires: 30 ``impl`` tasks of phase ``build`` completed in 10-20 minutes (p95
20m, timeout 1h), and task ``t9`` of that phase running since 09:00, reviewed
at 10:30 (``stuck``).

Silent: the same task reviewed at 09:50; or with only 5 completed tasks of its
kind and ``fallback_timeout = "0s"``; or ``timeouts = { build = "2h" }``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from rules.contract import Finding, RuleOptions
from rules.stuck_phases import failures, running
from store import BacklogView
from store.timeutil import Duration

ID = "stuck-phases"
DEFAULTS: dict[str, object] = {"severity": "warning", "approval": "manual"}
# The option `reviewer report` suggests changing when this rule is noisy, and which way is quieter.
TUNING = {"option": "timeout_multiplier", "quieter": "higher"}
# Kinds an operational cause (a broken executor, model or task type) produces: the
# engine may group them into one incident behind that cause.
SYMPTOM_KINDS = ("stuck", "stalled-phase", "timeout-pattern", "repeated-failure", "error-rate")


ErrorScope = Literal["executor", "model", "task_type"]
_ERROR_SCOPES: tuple[ErrorScope, ...] = ("executor", "model", "task_type")


class Options(RuleOptions):
    timeouts: dict[str, Duration] = Field(default_factory=dict)
    timeout_multiplier: float = Field(default=3.0, ge=1.0)
    min_samples: int = Field(default=20, ge=1)
    min_timeout: Duration = timedelta(minutes=10)
    fallback_timeout: Duration = timedelta(hours=6)
    history: Duration = timedelta(days=30)
    stuck_escalate_after: float = Field(default=3.0, gt=1.0)
    stall_window: Duration = timedelta(hours=6)
    min_open: int = Field(default=3, ge=1)
    stall_chance: float = Field(default=0.001, gt=0.0, lt=1.0)
    timeout_window: Duration = timedelta(hours=24)
    timeout_baseline: Duration = timedelta(days=7)
    timeout_patterns: list[str] = Field(
        default_factory=lambda: ["timeout", "timed out", "deadline exceeded"], min_length=1
    )
    min_timeouts: int = Field(default=5, ge=1)
    min_timeout_share: float = Field(default=0.3, ge=0.0, le=1.0)
    min_baseline_runs: int = Field(default=20, ge=1)
    alpha: float = Field(default=0.01, gt=0.0, lt=1.0)
    max_failures: int = Field(default=3, ge=1)
    error_window: Duration = timedelta(hours=6)
    max_error_rate: float = Field(default=0.5, gt=0.0, le=1.0)
    min_runs: int = Field(default=10, ge=1)
    critical_error_rate: float = Field(default=0.8, gt=0.0, le=1.0)
    error_scopes: list[ErrorScope] = Field(
        default_factory=lambda: list(_ERROR_SCOPES), min_length=1
    )

    @field_validator("timeouts")
    @classmethod
    def _positive_timeouts(cls, value: dict[str, timedelta]) -> dict[str, timedelta]:
        bad = [name for name, limit in value.items() if limit <= timedelta(0)]
        if bad:
            raise ValueError(f"timeouts must be longer than 0s (got 0 for {', '.join(bad)})")
        return value

    @field_validator("timeout_patterns")
    @classmethod
    def _usable_patterns(cls, value: list[str]) -> list[str]:
        if any(not p.strip() for p in value):
            raise ValueError("timeout_patterns must not contain empty text")
        return [p.strip().lower() for p in value]

    @model_validator(mode="after")
    def _consistent(self) -> Options:
        for name in ("history", "stall_window", "timeout_window", "timeout_baseline"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be longer than 0s")
        if self.critical_error_rate < self.max_error_rate:
            raise ValueError(
                f"critical_error_rate ({self.critical_error_rate}) must be at least "
                f"max_error_rate ({self.max_error_rate})"
            )
        return self


def check(options: Options, view: BacklogView) -> Iterator[Finding]:
    durations = running.learned_durations(options, view)
    found = running.stuck_tasks(options, view, durations)
    yield from running.stuck(found)
    yield from running.stalled_phases(options, view, found)
    yield from failures.timeout_patterns(options, view)
    yield from failures.repeated_failures(options, view)
    yield from failures.error_rates(options, view)
