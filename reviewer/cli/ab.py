"""``reviewer ab``: compare experiment arms (GET /api/ab)."""

from __future__ import annotations

from datetime import datetime

import click

from reviewer.cli.base import (
    Context,
    cli,
    emit_json,
    fail,
    handled,
    json_option,
    open_app,
    pass_ctx,
)
from reviewer.cli.base import table as print_table
from reviewer.cli.filters import filter_options, fmt, metric_filter, pct
from store import ARM_COLUMNS  # light: store loads its modules on first use


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

    f = metric_filter(since, until, task_type, model, executor)
    with handled(), open_app(ctx, read_only=True) as app:
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
        emit_json(doc)
        return
    rows = [
        {
            "arm": a["arm"] + (" (control)" if a["is_control"] else ""),
            "runs": a["runs"],
            "success": pct(a["success_rate"]),
            "95% ci": "-"
            if a["success_ci95"] is None
            else f"{a['success_ci95'][0] * 100:.0f}–{a['success_ci95'][1] * 100:.0f}%",
            "median": fmt(a["median_duration"], "s"),
        }
        for a in doc["arms"]
    ]
    print_table(rows, ["arm", "runs", "success", "95% ci", "median"], empty=f"no runs tagged {by}")
    for a in doc["arms"]:
        if not a["is_control"]:
            click.echo(f"{a['arm']}: {a['verdict']}")
    srm = doc["srm"]
    click.echo(f"sample ratio: {srm['note']}")
