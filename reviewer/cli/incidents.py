"""``reviewer incidents list``: findings grouped behind one cause, and bursts."""

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
def incidents() -> None:
    """Inspect incidents (findings sharing one cause) and bursts (one rule's flood)."""


@incidents.command("list")
@click.option(
    "--state", type=click.Choice(["open", "resolved", "all"]), default="open", show_default=True
)
@click.option("--limit", default=200, show_default=True)
@json_option
@pass_ctx
def incidents_list(ctx: Context, state: str, limit: int, as_json: bool) -> None:
    """List incidents and bursts, newest first, with their members and proposal."""
    from reviewer.incidents import listing

    with handled(), open_app(ctx) as app:
        items = listing(app.state, None if state == "all" else state, limit)
    if as_json:
        emit_json(items)
        return
    rows = [
        {
            **i,
            "findings": len(i["members"]),
            "proposal": f"#{i['proposal']['id']} {i['proposal']['state']}" if i["proposal"] else "",
            "cause": i["likeliest_cause"] or "",
        }
        for i in items
    ]
    table(
        rows,
        ["id", "kind", "key", "state", "severity", "findings", "cause", "proposal", "opened_at"],
        empty="no incidents",
    )
