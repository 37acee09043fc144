"""``reviewer ingest coverage FILE.xml --commit SHA [--branch B]``, registered on ``ingest``."""

from __future__ import annotations

import click

from reviewer.cli import Context, handled, ingest, json_option, open_app, pass_ctx, report_ingest
from store.timeutil import fmt_ts, utcnow


@ingest.command("coverage")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--commit", required=True, help="The commit the coverage was measured on.")
@click.option("--branch", default=None, help="The branch, if any (baselines are per branch).")
@json_option
@pass_ctx
def ingest_coverage_cmd(
    ctx: Context, file: str, commit: str, branch: str | None, as_json: bool
) -> None:
    """Load a Cobertura XML coverage report (coverage.py `coverage xml`, JaCoCo converted)."""
    from reviewer.ingest_coverage import ingest_coverage

    with handled(), open_app(ctx) as app:
        report = ingest_coverage(
            app.store, file, commit=commit, branch=branch, now=fmt_ts(utcnow())
        )
    report_ingest(report, as_json)
