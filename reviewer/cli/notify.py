"""``reviewer notify test|status``: the notification receivers of ``[notify]``."""

from __future__ import annotations

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
    table,
)


@cli.group()
def notify() -> None:
    """Check the notification receivers ([notify.receivers.<name>])."""


@notify.command("test")
@click.argument("receiver")
@pass_ctx
def notify_test(ctx: Context, receiver: str) -> None:
    """Send a test message to RECEIVER now, with its retries; exit 1 when it fails."""
    from reviewer.notify import DeliveryError, send_test

    with handled():
        cfg = ctx.config
    receivers = cfg.notify.receivers
    if receiver not in receivers:
        known = ", ".join(receivers) or "none: add a [notify.receivers.<name>] table"
        fail(f"no receiver {receiver!r} in [notify.receivers]; receivers: {known}", 2)
    target = receivers[receiver].target()
    try:
        detail = send_test(cfg, receiver)
    except DeliveryError as exc:
        fail(f"test message to {receiver} ({target}) failed: {exc}", 1)
    click.echo(f"sent a test message to {receiver} ({target}): {detail}")


@notify.command("status")
@json_option
@pass_ctx
def notify_status(ctx: Context, as_json: bool) -> None:
    """Each receiver: messages sent, waiting and dropped, and its last error."""
    from reviewer.notify import notification_status

    with handled(), open_app(ctx) as app:
        items = notification_status(app)
    if as_json:
        emit_json(items)
        return
    table(
        items,
        ["receiver", "type", "state", "sent", "pending", "dropped", "last_sent_at", "last_error"],
        empty="(no receivers: add [notify.receivers.<name>] tables to the config)",
    )
