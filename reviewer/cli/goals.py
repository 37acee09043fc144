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
        emit_json(items)
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
