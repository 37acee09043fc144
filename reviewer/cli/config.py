"""``reviewer config check``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reviewer.cli.base import (
    Context,
    cli,
    emit_json,
    handled,
    json_option,
    pass_ctx,
    table,
)


@cli.group("config")
def config_group() -> None:
    """Check the configuration."""


@config_group.command("check")
@json_option
@pass_ctx
def config_check(ctx: Context, as_json: bool) -> None:
    """Validate config.toml and the proposal templates."""
    from reviewer.render import Renderer
    from store.secrets import redact

    with handled():
        cfg = ctx.config
        problems = Renderer(cfg.resolve(cfg.reviewer.templates_dir)).check()
    url = cfg.store_url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        folder = Path(url[len("sqlite:///") :]).parent
        if not folder.is_dir():
            problems.append(
                f"store {url}: folder {folder} does not exist; create it, "
                "or point [reviewer] store at an existing folder"
            )
    if problems:
        for p in problems:
            click.echo(f"reviewer: {p}", err=True)
        sys.exit(2)
    rules_summary = {
        r.id: {
            "enabled": r.settings.enabled,
            "severity": r.settings.severity.value,
            "approval": r.settings.approval.value,
        }
        for r in cfg.rules.values()
    }
    token_scopes = {t.name: sorted(t.scopes) for t in cfg.api_tokens()}
    summary = {
        "config": str(cfg.path) if cfg.path else None,
        "store": redact(cfg.store_url),
        # Names and scopes only: a token's value is never printed.
        "tokens": token_scopes,
        "rules": rules_summary,
        "notify": {
            name: {"type": r.type, "target": r.target()} for name, r in cfg.notify.receivers.items()
        },
    }
    if as_json:
        emit_json(summary)
        return
    click.echo(f"{summary['config'] or 'built-in defaults'}: OK")
    click.echo(f"store: {summary['store']}")
    tokens = ", ".join(f"{n} ({' '.join(sc)})" for n, sc in token_scopes.items())
    click.echo(f"tokens: {tokens or 'none (every change over HTTP is refused)'}")
    table(
        [{"rule": k, **v} for k, v in rules_summary.items()],
        ["rule", "enabled", "severity", "approval"],
    )
    for name, r in cfg.notify.receivers.items():
        click.echo(f"notify {name}: {r.type} {r.target()}")
