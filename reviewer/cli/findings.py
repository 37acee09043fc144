"""``reviewer findings list``."""

from __future__ import annotations

import json

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
def findings() -> None:
    """Inspect findings."""


@findings.command("list")
@click.option(
    "--state", type=click.Choice(["open", "resolved", "all"]), default="open", show_default=True
)
@click.option("--rule", default=None)
@click.option("--limit", default=500, show_default=True)
@json_option
@pass_ctx
def findings_list(ctx: Context, state: str, rule: str | None, limit: int, as_json: bool) -> None:
    """List findings, most severe first."""
    with handled(), open_app(ctx, read_only=True) as app:
        rows = app.state.list_findings(None if state == "all" else state, rule, limit)
    items = [
        {
            **json.loads(r["payload"]),
            "state": r["state"],
            "first_seen": r["first_seen"],
            "last_seen": r["last_seen"],
            "times_seen": r["times_seen"],
            "regressions": r["regressions"],
            # The open incident or burst it waits behind (its proposal is inhibited).
            "incident": r.get("incident_id"),
        }
        for r in rows
    ]
    if as_json:
        emit_json(items)
        return
    table(
        items,
        ["severity", "rule", "kind", "subject", "state", "incident", "first_seen", "summary"],
        empty="no findings",
    )
