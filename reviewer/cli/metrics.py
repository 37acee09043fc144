"""``reviewer metrics``: pipeline metrics (GET /api/metrics)."""

from __future__ import annotations

from datetime import datetime

import click

from reviewer.cli.base import (
    Context,
    cli,
    emit_json,
    handled,
    json_option,
    open_app,
    pass_ctx,
)
from reviewer.cli.base import table as print_table
from reviewer.cli.filters import filter_options, fmt, metric_filter, pct


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

    f = metric_filter(since, until, task_type, model, executor)
    with handled(), open_app(ctx, read_only=True) as app:
        doc = pipeline_metrics(app.store.view(app.engine.clock()), f)
    if as_json:
        emit_json(doc)
        return
    et, sr, usage = doc["execution_time"], doc["success_rate"], doc["usage"]
    click.echo(
        f"runs {sr['total']}: {sr['completed']} completed, {sr['failed']} failed "
        f"(success {pct(sr['rate'])}); {usage['tasks']} tasks"
    )
    click.echo(
        f"duration p50 {fmt(et['p50_seconds'], 's')}  p95 {fmt(et['p95_seconds'], 's')}  "
        f"mean {fmt(et['avg_seconds'], 's')}  ({et['count']} timed runs)"
    )
    per = usage["per_task"]
    click.echo(
        f"usage tokens in {fmt(usage['tokens_in'])}, out {fmt(usage['tokens_out'])}, "
        f"cost ${fmt(usage['cost_usd'])}, api calls {fmt(usage['api_calls'])}; per task: "
        f"in {fmt(per['tokens_in'])}, out {fmt(per['tokens_out'])}, "
        f"${fmt(per['cost_usd'])}, {fmt(per['api_calls'])} calls"
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
                "success": pct(v["success_rate"]),
                "avg duration": fmt(v["avg_duration"], "s"),
            }
            for key, v in breakdown.items()
        ]
        print_table(rows, [title, "runs", "completed", "failed", "success", "avg duration"])
