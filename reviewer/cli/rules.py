"""``reviewer rules list|show|reset-breaker``: the registered rules, their settings, and
the breaker that turns a much-rejected rule's ``auto`` approval into ``manual``."""

from __future__ import annotations

import json

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
    who,
)


@cli.group("rules")
def rules_group() -> None:
    """The rule modules: what each flags, its kinds and options."""


@rules_group.command("list")
@json_option
@pass_ctx
def rules_list(ctx: Context, as_json: bool) -> None:
    """List the rules with their settings from the config."""
    from rules import REGISTRY

    with handled():
        cfg = ctx.config
    items = []
    for rule_id, module in REGISTRY.items():
        settings = cfg.rules[rule_id].settings
        first = (module.__doc__ or "").strip().splitlines()[0]
        items.append(
            {
                "rule": rule_id,
                "enabled": settings.enabled,
                "severity": settings.severity.value,
                "approval": settings.approval.value,
                "about": first.split(":", 1)[-1].strip(),
            }
        )
    if as_json:
        emit_json(items)
        return
    table(items, ["rule", "enabled", "severity", "approval", "about"])


@rules_group.command("show")
@click.argument("rule_id")
@pass_ctx
def rules_show(ctx: Context, rule_id: str) -> None:
    """Print a rule's documentation and its options as configured."""
    import inspect

    from rules import REGISTRY

    if rule_id not in REGISTRY:
        fail(f"no rule {rule_id!r}; known rules: {', '.join(REGISTRY)}", 2)
    with handled():
        cfg = ctx.config
    click.echo(inspect.cleandoc(REGISTRY[rule_id].__doc__ or ""))
    rule = cfg.rules[rule_id]
    click.echo("")
    click.echo(f"As configured ({cfg.path or 'built-in defaults'}):")
    shown = {**rule.settings.model_dump(mode="json"), **rule.options.model_dump(mode="json")}
    from reviewer.controls import control_ttl
    from store.timeutil import fmt_duration

    shown["control_ttl"] = fmt_duration(control_ttl(cfg, rule_id))  # the one in effect
    for key, value in shown.items():
        click.echo(f"  {key} = {json.dumps(value, default=str)}")


@rules_group.command("reset-breaker")
@click.argument("rule_id")
@click.option("--by", default=None, help="Who resets it (default: your user name).")
@click.option("--reason", default=None, help="Why; kept in the audit log.")
@json_option
@pass_ctx
def rules_reset_breaker(
    ctx: Context, rule_id: str, by: str | None, reason: str | None, as_json: bool
) -> None:
    """Lift a rule's tripped breaker: its configured approval (auto) applies again."""
    from store.timeutil import fmt_ts

    with handled(), open_app(ctx) as app, app.store.transaction():
        row = app.state.reset_breaker(
            rule_id, by=by or who(), at=fmt_ts(app.clock()), reason=reason
        )
    if as_json:
        emit_json(row)
    else:
        click.echo(
            f"reset the breaker of {rule_id} (tripped at {row['tripped_at']}); "
            "its configured approval applies again"
        )
