"""``reviewer silence add|list|expire``."""

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
    table,
    who,
)


@cli.group()
def silence() -> None:
    """Silence findings by rule and subject pattern until a time."""


@silence.command("add")
@click.option("--rule", required=True, help="Rule ID (glob allowed, e.g. 'usage-*').")
@click.option("--subject", required=True, help="Subject glob, e.g. 'task-12*' or 'model:*'.")
@click.option("--until", "until", callback=iso, required=True, help="ISO 8601 end time.")
@click.option("--by", default=None, help="Who silences (default: your user name).")
@click.option("--comment", required=True, help="Why; kept with the silence.")
@json_option
@pass_ctx
def silence_add(
    ctx: Context,
    rule: str,
    subject: str,
    until: datetime,
    by: str | None,
    comment: str,
    as_json: bool,
) -> None:
    """Add a silence."""
    from reviewer.app import check_silence
    from store.timeutil import fmt_ts, utcnow

    now = utcnow()
    try:
        check_silence(rule, subject, until, now)
    except ValueError as exc:
        field, _, why = str(exc).partition(": ")
        raise click.BadParameter(why, param_hint=f"--{field}") from None
    with handled(), open_app(ctx) as app, app.store.transaction():
        s = app.state.add_silence(
            rule=rule,
            subject=subject,
            until=fmt_ts(until),
            by=by or who(),
            comment=comment,
            at=fmt_ts(now),
        )
    if as_json:
        emit_json(s.public())
    else:
        click.echo(f"silence {s.id}: {rule} {subject} until {s.until}")


@silence.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@json_option
@pass_ctx
def silence_list(ctx: Context, show_all: bool, as_json: bool) -> None:
    """List silences in force (or all of them)."""
    from store.timeutil import fmt_ts, utcnow

    with handled(), open_app(ctx, read_only=True) as app:
        items = [s.public() for s in app.state.silences(fmt_ts(utcnow()), include_expired=show_all)]
    if as_json:
        emit_json(items)
        return
    table(
        items,
        ["id", "rule", "subject", "until", "created_by", "expired_at", "comment"],
        empty="no silences",
    )


@silence.command("expire")
@click.argument("silence_id", type=int)
@click.option("--by", default=None)
@click.option("--reason", default=None)
@json_option
@pass_ctx
def silence_expire(
    ctx: Context, silence_id: int, by: str | None, reason: str | None, as_json: bool
) -> None:
    """End a silence now."""
    from store.timeutil import fmt_ts, utcnow

    with handled(), open_app(ctx) as app, app.store.transaction():
        s = app.state.expire_silence(silence_id, by=by or who(), at=fmt_ts(utcnow()), reason=reason)
    if as_json:
        emit_json(s.public())
    else:
        click.echo(f"silence {s.id} expired")
