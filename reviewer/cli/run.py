"""``reviewer run``: the daemon (scheduler and API)."""

from __future__ import annotations

import sys

import click

from reviewer.cli.base import (
    Context,
    cli,
    handled,
    pass_ctx,
)


@cli.command()
@click.option("--host", default=None, help="API host (default from config).")
@click.option("--port", default=None, type=int, help="API port (default from config).")
@click.option("--no-api", is_flag=True, help="Run the scheduler only.")
@pass_ctx
def run(ctx: Context, host: str | None, port: int | None, no_api: bool) -> None:
    """Run the daemon: scheduled reviews plus the HTTP API."""
    from reviewer.daemon import run_daemon
    from reviewer.logs import setup_logging

    setup_logging("INFO" if ctx.log_level.upper() == "WARNING" else ctx.log_level)
    with handled():
        code = run_daemon(ctx.config, host=host, port=port, api=not no_api)
    sys.exit(code)
