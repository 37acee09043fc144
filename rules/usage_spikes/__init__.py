"""usage-spikes: tasks, hours and days that use far more tokens or money than usual.

Agent runs go wrong expensively: a prompt that loops, a model that rambles, a
retry storm, a new executor with no limits. This rule watches the tokens
(in + out) and cost of every finished task and flags what stands far above
normal, so someone looks before the bill does; with ``action = "throttle"`` it
proposes pausing or throttling the scope instead of only investigating, and a
spike or budget finding carries a ``throttle`` control that approving applies
(a spike: the scope's usual number of tasks in its peak hour, per hour; a
budget: the budget, per day; see "Controls").

Kinds
-----
``task-outlier`` (subject ``task:ID``)
    A task recorded in the last ``outlier_window`` whose tokens or cost is far
    above its peers (same task type and model over ``outlier_history``): robust
    score (ln x − median ln) / (1.4826 × MAD of ln) at least ``outlier_score``
    (usage per task varies by factors, so it is judged on the log scale), at
    least ``outlier_min_ratio`` times the median, and above the median by at
    least the absolute floor. A task at ``outlier_clear_ratio`` times the median
    or more needs only ``outlier_clear_score``: ten times the usual is a runaway
    even in a group whose usage varies widely, unless it varies so widely that
    such tasks are common. Needs ``outlier_min_peers`` peers.
``spike`` (subject ``model:NAME``, ``executor:NAME`` or ``task_type:NAME``)
    Hourly tokens or cost of a scope far above what is normal for that hour:
    the same hour (±1 h) on earlier days, or of the week once three weeks of
    history exist, so daily and weekly peaks are part of normal. An hour is
    anomalous in one of two ways. On its own: it meets ``spike_score``,
    ``spike_min_ratio`` and the hourly floor, and its volume makes it unlikely
    by chance (``spike_volume_score``): far more tasks than that hour usually
    has (Poisson), or far more usage per task than the scope's usual tasks
    (their mean and spread), so a quiet night where a few ordinary large tasks
    meet is not a spike. Or as part of a sustained rise (a level shift no single
    hour shows): a one-sided CUSUM adds each hour's robust score less
    ``spike_shift_slack`` (one hour adds at most half of ``spike_shift_limit``
    plus the slack, so one wild hour is never enough) and, once the sum reaches
    ``spike_shift_limit``, the hours of the rise together must be
    ``spike_shift_ratio`` times their usual amount, above it by twice the hourly
    floor, and unlikely by chance by the same volume test
    (``spike_shift_limit = 0``, the default for now, turns this off: at 8.0 it
    catches level shifts and sustained rises, and a growing scope's baseline
    follows its last week's trend, but on the rule's own simulated pipelines it
    also opened spikes after one-hour bursts, precision 0.63). An hour counts only if it does
    so without its single largest task (a rise, without the rise's largest
    task): one runaway task is a ``task-outlier``. The spike opens after
    ``spike_open_after`` anomalous complete hours in a row and stays open until
    ``spike_close_after`` normal hours in a row, all read from the data, so the
    answer at any instant is the same on every replay. A scope needs
    ``spike_min_history`` of data first. The finding gives the peak hour
    against its usual amount (ratio and robust score; "no usage at this hour
    before" where the usual is nothing), the episode's total against its usual
    one, and the chance of the evidence under normal conditions. One event
    often raises several scopes (a retry loop of impl tasks also raises the
    models and executors that ran them): the scope with the largest excess is
    reported, every other spiking scope is judged again without its tasks, and
    those that no longer spike are named in its finding as explained by it;
    those that still do are causes of their own, reported in turn.
``budget`` (subject ``all`` or the scope)
    Spend since 00:00 UTC today above ``daily_budget_usd`` or a scope's entry
    in ``budgets``; spend at ``budget_escalate_at`` times the budget is an error.

Tasks that reported no tokens or no cost are left out of that measure, never
counted as zero.

Options (defaults shown)::

    [rules.usage-spikes]
    action = "alert"                 # "alert": investigate; "throttle": pause/throttle the scope
    actions = {}                     # per kind, e.g. { budget = "throttle" }
    kinds = ["task-outlier", "spike", "budget"]  # which checks run
    outlier_window = "24h"           # tasks recorded this recently are checked
    outlier_history = "30d"          # peers come from this far back
    outlier_score = 5.3              # robust z of ln(usage); ~6x the median at a ±35% spread
    outlier_min_ratio = 4.0          # 3x happens naturally about once in a thousand tasks
    outlier_clear_ratio = 10.0       # this many times the median is far enough ...
    outlier_clear_score = 4.0        # ... at this lower robust score
    outlier_min_peers = 30
    outlier_max_peers = 5000         # the most recent peers of a group are enough
    outlier_min_tokens = 10000       # tokens above the median, at least
    outlier_min_cost_usd = 0.5       # cost above the median, at least
    spike_dimensions = ["model", "executor", "task_type"]
    spike_baseline = "28d"           # history an hour is compared with
    spike_min_history = "7d"
    spike_score = 3.0                # robust z against the same hours' sums
    spike_min_ratio = 3.0
    spike_volume_score = 3.0         # the hour's task count or usage per task must be this unlikely
    spike_min_tokens = 100000        # hourly tokens above normal, at least
    spike_min_cost_usd = 2.0         # hourly cost above normal, at least
    spike_open_after = 2             # anomalous complete hours in a row to fire
    spike_close_after = 3            # normal hours in a row to stop firing
    spike_shift_limit = 0.0          # CUSUM for a sustained rise (try 8.0); 0 = off
    spike_shift_slack = 1.0          # robust score an hour must pass to add to it
    spike_shift_ratio = 1.5          # the rise's hours together, times their usual amount
    spike_lookback = "24h"           # recent hours replayed for the hysteresis
    daily_budget_usd = 0.0           # all tasks together; 0 = no global budget
    budgets = {}                     # per scope, e.g. { "model:claude" = 50.0 }
    budget_escalate_at = 2.0

Fires: model ``claude`` normally spends about $4 an hour at 14:00 UTC; from
13:00 it spent $30 an hour, and the review at 15:10 sees two such hours. Or,
with ``spike_shift_limit = 8.0``, a model that spends $5 an hour in ten tasks
runs sixteen tasks an hour from 10:00 ($8 an hour, 1.6×, no hour near 3×):
the review at 15:10 reports a sustained rise since 13:00, "by chance about 1
in 11,000".

Silent: the same $30 in one hour only, followed by a normal hour; a $30
hour at 14:00 that happens every weekday; or twelve tasks an hour instead of
ten (1.2×) however long it lasts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from rules.contract import Finding, RuleOptions
from store import USAGE_DIMENSIONS, BacklogView
from store.timeutil import Duration

ID = "usage-spikes"
DEFAULTS: dict[str, object] = {"severity": "warning", "approval": "manual"}
# The option `reviewer report` suggests changing when this rule is noisy, and which way is quieter.
TUNING = {"option": "spike_score", "quieter": "higher"}
# Kinds an operational cause can produce (grouped into incidents by the engine).
SYMPTOM_KINDS = ("spike", "task-outlier")

Action = Literal["alert", "throttle"]
Kind = Literal["task-outlier", "spike", "budget"]
Dimension = Literal["model", "executor", "task_type"]
_KINDS: tuple[Kind, ...] = ("task-outlier", "spike", "budget")
_DIMENSIONS: tuple[Dimension, ...] = ("model", "executor", "task_type")


class Options(RuleOptions):
    action: Action = "alert"
    actions: dict[Kind, Action] = Field(default_factory=dict)
    kinds: list[Kind] = Field(default_factory=lambda: list(_KINDS))
    outlier_window: Duration = timedelta(hours=24)
    outlier_history: Duration = timedelta(days=30)
    outlier_score: float = Field(default=5.3, gt=0)
    outlier_min_ratio: float = Field(default=4.0, ge=1.0)
    outlier_clear_ratio: float = Field(default=10.0, ge=1.0)
    outlier_clear_score: float = Field(default=4.0, gt=0)
    outlier_min_peers: int = Field(default=30, ge=3)
    outlier_max_peers: int = Field(default=5000, ge=3)
    outlier_min_tokens: float = Field(default=10000, ge=0)
    outlier_min_cost_usd: float = Field(default=0.5, ge=0)
    spike_dimensions: list[Dimension] = Field(default_factory=lambda: list(_DIMENSIONS))
    spike_baseline: Duration = timedelta(days=28)
    spike_min_history: Duration = timedelta(days=7)
    spike_score: float = Field(default=3.0, gt=0)
    spike_min_ratio: float = Field(default=3.0, ge=1.0)
    spike_volume_score: float = Field(default=3.0, gt=0)
    spike_min_tokens: float = Field(default=100000, ge=0)
    spike_min_cost_usd: float = Field(default=2.0, ge=0)
    spike_open_after: int = Field(default=2, ge=1)
    spike_close_after: int = Field(default=3, ge=1)
    spike_shift_limit: float = Field(default=0.0, ge=0)
    spike_shift_slack: float = Field(default=1.0, gt=0)
    spike_shift_ratio: float = Field(default=1.5, ge=1.0)
    spike_lookback: Duration = timedelta(hours=24)
    daily_budget_usd: float = Field(default=0.0, ge=0)
    budgets: dict[str, float] = Field(default_factory=dict)
    budget_escalate_at: float = Field(default=2.0, gt=1.0)

    @field_validator("budgets")
    @classmethod
    def _scoped_budgets(cls, value: dict[str, float]) -> dict[str, float]:
        for key, amount in value.items():
            dim, _, name = key.partition(":")
            if dim not in USAGE_DIMENSIONS or not name:
                raise ValueError(
                    f"budget key {key!r} must be model:NAME, executor:NAME or task_type:NAME"
                )
            if amount <= 0:
                raise ValueError(f"budget for {key!r} must be more than 0 (got {amount})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Options:
        if self.outlier_history <= self.outlier_window:
            raise ValueError("outlier_history must be longer than outlier_window")
        if self.outlier_clear_ratio < self.outlier_min_ratio:
            raise ValueError("outlier_clear_ratio must be at least outlier_min_ratio")
        days = self.spike_min_history // timedelta(days=1)
        if days < 3 or self.spike_baseline < self.spike_min_history:
            raise ValueError(
                "spike_min_history must be at least 3d and no longer than spike_baseline"
            )
        hours = self.spike_lookback // timedelta(hours=1)
        if hours < self.spike_open_after + self.spike_close_after:
            raise ValueError("spike_lookback must cover spike_open_after + spike_close_after hours")
        return self

    def action_for(self, kind: Kind) -> Action:
        return self.actions.get(kind, self.action)


def check(options: Options, view: BacklogView) -> Iterator[Finding]:
    if "task-outlier" in options.kinds:
        yield from _task_outliers(options, view)
    if "spike" in options.kinds:
        yield from _spikes(options, view)
    if "budget" in options.kinds:
        yield from _budgets(options, view)


def _task_outliers(options: Options, view: BacklogView) -> Iterator[Finding]:
    # The helpers load numpy and scipy: imported here, not at the top (see rules/__init__.py).
    from rules.usage_spikes import findings as text
    from rules.usage_spikes.stats import Thresholds, log_reference

    recent = view.ago(options.outlier_window)
    history = view.ago(options.outlier_history)
    limits = {
        "tokens": Thresholds(
            options.outlier_score,
            options.outlier_min_ratio,
            options.outlier_min_tokens,
            options.outlier_clear_ratio,
            options.outlier_clear_score,
        ),
        "cost": Thresholds(
            options.outlier_score,
            options.outlier_min_ratio,
            options.outlier_min_cost_usd,
            options.outlier_clear_ratio,
            options.outlier_clear_score,
        ),
    }
    best: dict[str, Finding] = {}
    for group in view.usage_peer_groups(recent, history, options.outlier_min_peers):
        task_type, model = group["task_type"], group["model"]
        samples = dict(
            zip(
                ("tokens", "cost"),
                view.usage_peer_values(task_type, model, history, options.outlier_max_peers),
                strict=True,
            )
        )
        refs = {
            m: log_reference(v) for m, v in samples.items() if len(v) >= options.outlier_min_peers
        }
        if not refs:
            continue
        cuts = {m: limits[m].cut(r) for m, r in refs.items()}
        for task in view.usage_heavy_tasks(
            task_type, model, recent, cuts.get("tokens"), cuts.get("cost")
        ):
            values = {"tokens": task["tokens"], "cost": task["cost_usd"]}
            over = [
                m
                for m, ref in refs.items()
                if values[m] is not None and limits[m].exceeded(values[m], ref)
            ]
            if not over:
                continue
            finding = text.task_outlier(
                task, task_type, model, refs, over, options.action_for("task-outlier")
            )
            subject = finding.subject
            if subject not in best or finding.evidence["score"] > best[subject].evidence["score"]:
                best[subject] = finding
    yield from best.values()


def _spikes(options: Options, view: BacklogView) -> Iterator[Finding]:
    from rules.usage_spikes import findings as text
    from rules.usage_spikes.spike import ShiftParams, SpikeParams, find_spikes
    from rules.usage_spikes.stats import Thresholds

    params = SpikeParams(
        days=options.spike_baseline // timedelta(days=1),
        min_days=options.spike_min_history // timedelta(days=1),
        lookback=options.spike_lookback // timedelta(hours=1),
        open_after=options.spike_open_after,
        volume_score=options.spike_volume_score,
        shift=ShiftParams(
            options.spike_shift_slack, options.spike_shift_limit, options.spike_shift_ratio
        )
        if options.spike_shift_limit > 0
        else None,
        # Trend following belongs to the sustained-rise mode: on its own it cost the
        # rule's simulated spikes recall (0.885 against 1.0), so it is off with it.
        level_hours=168 if options.spike_shift_limit > 0 else 0,
        close_after=options.spike_close_after,
        dimensions=tuple(options.spike_dimensions),
        limits={
            "tokens": Thresholds(
                options.spike_score, options.spike_min_ratio, options.spike_min_tokens
            ),
            "cost": Thresholds(
                options.spike_score, options.spike_min_ratio, options.spike_min_cost_usd
            ),
        },
    )
    since, until = params.window(view.now)
    rows = view.usage_hourly(view.ts(since), view.ts(until))
    for spike in find_spikes(rows, until, params):
        yield text.spike(spike, options.action_for("spike"))


def _budgets(options: Options, view: BacklogView) -> Iterator[Finding]:
    from rules.usage_spikes import findings as text

    day_start = view.now_ts[:10] + "T00:00:00Z"
    wanted: list[tuple[str, str | None, str, float]] = []
    if options.daily_budget_usd > 0:
        wanted.append(("all", None, "", options.daily_budget_usd))
    for key, amount in sorted(options.budgets.items()):
        dimension, _, scope_name = key.partition(":")
        wanted.append((key, dimension, scope_name, amount))
    spend: dict[str | None, dict[str, tuple[float, int]]] = {}
    for scope, dim, name, budget in wanted:
        if dim not in spend:
            spend[dim] = view.usage_spend(day_start, dim)
        spent, tasks = spend[dim].get(name, (0.0, 0))
        if spent > budget:
            yield text.budget(
                scope,
                spent,
                tasks,
                budget,
                day_start,
                view.now_ts,
                options.budget_escalate_at,
                options.action_for("budget"),
            )
