"""``reviewer runs list``: review cycles."""

from __future__ import annotations

import click

from reviewer.cli.base import (
    Context,
    cli,
    emit_json,
    handled,
    json_option,
    open_app,
    pass_ctx,
    table,
)


@cli.group()
def runs() -> None:
    """Inspect review runs."""


@runs.command("list")
@click.option("--limit", default=20, show_default=True)
@json_option
@pass_ctx
def runs_list(ctx: Context, limit: int, as_json: bool) -> None:
    """List recent review runs."""
    with handled(), open_app(ctx, read_only=True) as app:
        items = [r.public() for r in app.state.runs(limit)]
    if as_json:
        emit_json(items)
        return
    for r in items:
        r["errors"] = len(r["errors"])
    table(
        items,
        [
            "id",
            "now",
            "status",
            "trigger",
            "findings",
            "new_proposals",
            "held_back",
            "resolved",
            "errors",
            "future_records",
            "skipped_records",
            "duration_ms",
        ],
        empty="no runs yet",
    )
