"""The ``metrics``, ``ab`` and ``goals`` commands (Phases 1–3), registered on ``reviewer.cli.cli``.

Each prints a table for humans, or with ``--json`` the same document the
HTTP API returns.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from reviewer.cli import Context, _emit_json, _iso, cli, fail, handled, json_option, open_app
from reviewer.cli import table as print_table
from store import ARM_COLUMNS, MetricFilter
from store.timeutil import fmt_ts

F = TypeVar("F", bound=Callable[..., Any])
pass_ctx = click.make_pass_decorator(Context)


def filter_options(f: F) -> F:
    """The run filters every metrics command takes."""
    for opt in reversed(
        [
            click.option("--since", callback=_iso, help="Runs created at or after (ISO 8601)."),
            click.option("--until", callback=_iso, help="Runs created before (ISO 8601)."),
            click.option("--task-type", default=None, help="Only runs of this task type."),
            click.option("--model", default=None, help="Only runs of this model."),
            click.option("--executor", default=None, help="Only runs of this executor."),
        ]
    ):
        f = opt(f)
    return f


def _filter(
    since: datetime | None,
    until: datetime | None,
    task_type: str | None,
    model: str | None,
    executor: str | None,
) -> MetricFilter:
    return MetricFilter(
        since=fmt_ts(since) if since else None,
        until=fmt_ts(until) if until else None,
        task_type=task_type,
        model=model,
        executor=executor,
    )


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}{suffix}"
    return f"{value}{suffix}"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


@cli.command()
@filter_options
@json_option
@pass_ctx
def metrics(
    ctx: Context,
    since: datetime | None,
    until: datetime | None,
    task_type: str | None,
    model: str | None,
    executor: str | None,
    as_json: bool,
) -> None:
    """Pipeline metrics: durations p50/p95, success rates, usage (GET /api/agent/metrics)."""
    from reviewer.metrics import pipeline_metrics

    f = _filter(since, until, task_type, model, executor)
    with handled(), open_app(ctx) as app:
        doc = pipeline_metrics(app.store.view(app.engine.clock()), f)
    if as_json:
        _emit_json(doc)
        return
    et, sr, usage = doc["execution_time"], doc["success_rate"], doc["usage"]
    click.echo(
        f"runs {sr['total']}: {sr['completed']} completed, {sr['failed']} failed "
        f"(success {_pct(sr['rate'])}); {usage['tasks']} tasks"
    )
    click.echo(
        f"duration p50 {_fmt(et['p50_seconds'], 's')}  p95 {_fmt(et['p95_seconds'], 's')}  "
        f"mean {_fmt(et['avg_seconds'], 's')}  ({et['count']} timed runs)"
    )
    per = usage["per_task"]
    click.echo(
        f"usage tokens in {_fmt(usage['tokens_in'])}, out {_fmt(usage['tokens_out'])}, "
        f"cost ${_fmt(usage['cost_usd'])}, api calls {_fmt(usage['api_calls'])}; per task: "
        f"in {_fmt(per['tokens_in'])}, out {_fmt(per['tokens_out'])}, "
        f"${_fmt(per['cost_usd'])}, {_fmt(per['api_calls'])} calls"
    )
    for title, breakdown in (
        ("task type", doc["by_task_type"]),
        ("model", doc["by_model"]),
        ("executor", sr["by_executor"]),
    ):
        click.echo("")
        rows = [
            {
                title: key,
                "runs": v["count"],
                "completed": v["completed"],
                "failed": v["failed"],
                "success": _pct(v["success_rate"]),
                "avg duration": _fmt(v["avg_duration"], "s"),
            }
            for key, v in breakdown.items()
        ]
        print_table(rows, [title, "runs", "completed", "failed", "success", "avg duration"])


@cli.command()
@click.option(
    "--by",
    type=click.Choice(ARM_COLUMNS),
    default="prompt_variant",
    show_default=True,
    help="The tag whose values are the arms.",
)
@click.option("--control", default=None, help="The control arm (default: configured or largest).")
@click.option("--experiment", default=None, help="A configured [experiments.<name>].")
@filter_options
@json_option
@pass_ctx
def ab(
    ctx: Context,
    by: str,
    control: str | None,
    experiment: str | None,
    since: datetime | None,
    until: datetime | None,
    task_type: str | None,
    model: str | None,
    executor: str | None,
    as_json: bool,
) -> None:
    """Compare A/B arms: success (Wilson, Fisher), durations (Mann–Whitney), Holm, SRM."""
    from reviewer.experiments import compare_arms

    f = _filter(since, until, task_type, model, executor)
    with handled(), open_app(ctx) as app:
        try:
            doc = compare_arms(
                app.store.view(app.engine.clock()),
                by,
                config=app.config,
                filters=f,
                control=control,
                experiment=experiment,
            )
        except ValueError as exc:
            fail(str(exc), 2)
    if as_json:
        _emit_json(doc)
        return
    rows = [
        {
            "arm": a["arm"] + (" (control)" if a["is_control"] else ""),
            "runs": a["runs"],
            "success": _pct(a["success_rate"]),
            "95% ci": "-"
            if a["success_ci95"] is None
            else f"{a['success_ci95'][0] * 100:.0f}–{a['success_ci95'][1] * 100:.0f}%",
            "median": _fmt(a["median_duration"], "s"),
        }
        for a in doc["arms"]
    ]
    print_table(rows, ["arm", "runs", "success", "95% ci", "median"], empty=f"no runs tagged {by}")
    for a in doc["arms"]:
        if not a["is_control"]:
            click.echo(f"{a['arm']}: {a['verdict']}")
    srm = doc["srm"]
    click.echo(f"sample ratio: {srm['note']}")


@cli.command()
@click.option("--now", callback=_iso, help="Goals as of this instant (ISO 8601).")
@json_option
@pass_ctx
def goals(ctx: Context, now: datetime | None, as_json: bool) -> None:
    """Goals: progress %, counts and predicted completion (GET /api/goals)."""
    from store.goals import goals_report

    with handled(), open_app(ctx) as app:
        settings = app.config.goal_settings()
        items = goals_report(
            app.store.view(now or app.engine.clock()),
            settings["goals"],
            running_weight=settings["running_weight"],
            rate_window=settings["rate_window"],
        )
    if as_json:
        _emit_json(items)
        return
    print_table(
        [
            {**g, "progress": f"{g['progress_percent']}%", "done": f"{g['completed']}"}
            for g in items
        ],
        [
            "id",
            "title",
            "status",
            "progress",
            "done",
            "remaining",
            "deadline",
            "predicted_completion",
        ],
        empty="no goals; define [goals.<id>] in config.toml or POST /api/goals",
    )
