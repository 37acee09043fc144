"""``reviewer goals``: goal progress (GET /api/goals)."""

from __future__ import annotations

from datetime import datetime

import click

from reviewer.cli.base import (
    Context,
    cli,
    emit_json,
    handled,
    iso,
    json_option,
    open_app,
    pass_ctx,
)
from reviewer.cli.base import table as print_table


@cli.command()
@click.option("--now", callback=iso, help="Goals as of this instant (ISO 8601).")
@json_option
@pass_ctx
def goals(ctx: Context, now: datetime | None, as_json: bool) -> None:
    """Goals: progress %, counts, predicted completion, on track (GET /api/goals)."""
    from store.goals import goals_overview

    with handled(), open_app(ctx, read_only=True) as app:
        overview = goals_overview(
            app.store.view(now or app.engine.clock()), app.config.goal_settings()
        )
    if as_json:
        emit_json(overview)  # the shape of GET /api/goals
        return
    items = overview["goals"]
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
            "on_track",
        ],
        empty="no goals; define [goals.<id>] in config.toml or POST /api/goals",
    )
    for g in items:
        if g["on_track_reason"]:
            click.echo(f"{g['id']}: not on track: {g['on_track_reason']}")
