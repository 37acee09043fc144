"""``reviewer controls list|lift``: what the pipeline obeys."""

from __future__ import annotations

from typing import Any

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
    who,
)


@cli.group()
def controls() -> None:
    """Controls the pipeline obeys: paused executors, held task types, throttles, quarantines."""


def _limits(c: dict[str, Any]) -> str | None:
    parts = []
    if c["tasks_per_hour"] is not None:
        parts.append(f"{c['tasks_per_hour']}/h")
    if c["usd_per_day"] is not None:
        parts.append(f"${c['usd_per_day']:g}/day")
    return " ".join(parts) or None


@controls.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include lifted and expired controls.")
@json_option
@pass_ctx
def controls_list(ctx: Context, show_all: bool, as_json: bool) -> None:
    """List the controls in force, newest first (or every control with --all)."""
    from store.timeutil import fmt_ts

    with handled(), open_app(ctx) as app:
        at = fmt_ts(app.clock())
        items = [c.public(at) for c in app.state.controls(at, include_lifted=show_all)]
    if as_json:
        emit_json(items)
        return
    rows = [{**c, "limits": _limits(c)} for c in items]
    columns = ["id", "kind", "target", "limits", "status", "expires_at", "created_by", "reason"]
    if show_all:
        columns[6:6] = ["lifted_at", "lifted_by"]
    table(rows, columns, empty="no controls in force" if not show_all else "no controls")


@controls.command("lift")
@click.argument("control_id", type=int)
@click.option("--reason", required=True, help="Why it is lifted; kept in the audit log.")
@click.option("--by", default=None, help="Who lifts it (default: your user name).")
@json_option
@pass_ctx
def controls_lift(
    ctx: Context, control_id: int, reason: str, by: str | None, as_json: bool
) -> None:
    """Lift a control now: the pipeline stops obeying it."""
    from store.timeutil import fmt_ts

    if not reason.strip():
        raise click.BadParameter("must say why", param_hint="--reason")
    with handled(), open_app(ctx) as app, app.store.transaction():
        at = fmt_ts(app.clock())
        c, changed = app.state.lift_control(
            control_id, by=by or who(), at=at, reason=reason.strip()
        )
    if as_json:
        emit_json(c.public(at))
    elif changed:
        click.echo(f"control {c.id} lifted: {c.kind.value} {c.target}")
    else:
        click.echo(f"control {c.id} was already lifted at {c.lifted_at} by {c.lifted_by}")
