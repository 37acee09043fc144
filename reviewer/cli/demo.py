"""``reviewer demo``: a simulated pipeline, reviewed."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from reviewer.cli.base import (
    Context,
    cli,
    fail,
    handled,
    iso,
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
@click.option(
    "--end",
    callback=iso,
    metavar="ISO",
    help="End the history at this instant (floored to the hour) instead of now; "
    "the same --end gives the same demo.",
)
@json_option
@pass_ctx
def demo(ctx: Context, db_path: str, end: datetime | None, as_json: bool) -> None:
    """Build a realistic demo pipeline with every kind of problem and review it once."""
    from reviewer.demo import NotADemoStore, run_demo

    if end is not None and end > datetime.now(UTC):
        fail(f"--end {end:%Y-%m-%dT%H:%M:%SZ} is in the future; the demo's history ends by now", 2)
    with handled():
        try:
            code = run_demo(Path(db_path), as_json=as_json, end=end)
        except NotADemoStore as exc:
            fail(str(exc), 1)
    sys.exit(code)
