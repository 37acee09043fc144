"""``reviewer demo``: a simulated pipeline, reviewed."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reviewer.cli.base import (
    Context,
    cli,
    fail,
    handled,
    json_option,
    pass_ctx,
)


@cli.command()
@click.option(
    "--db",
    "db_path",
    default="reviewer-demo.db",
    show_default=True,
    help="Where to build the demo store (replaced if it exists).",
)
@json_option
@pass_ctx
def demo(ctx: Context, db_path: str, as_json: bool) -> None:
    """Build a realistic demo pipeline with every kind of problem and review it once."""
    from reviewer.demo import NotADemoStore, run_demo

    with handled():
        try:
            code = run_demo(Path(db_path), as_json=as_json)
        except NotADemoStore as exc:
            fail(str(exc), 1)
    sys.exit(code)
