"""``reviewer ingest tasks|metrics|junit|coverage``: records into the store."""

from __future__ import annotations

import sys
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
)


@cli.group()
def ingest() -> None:
    """Load pipeline records into the store."""


def _report_ingest(report: Any, as_json: bool) -> None:
    if as_json:
        emit_json(report.public())
    else:
        for msg in report.rejected:
            click.echo(f"rejected: {msg}", err=True)
        for msg in report.warnings:
            click.echo(f"warning: {msg}", err=True)
        click.echo(f"stored {report.stored} record(s), rejected {report.rejected_count}")
    if report.rejected:
        sys.exit(1)


@ingest.command("tasks")
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
@pass_ctx
def ingest_tasks(ctx: Context, file: str, as_json: bool) -> None:
    """Load tasks from a JSON Lines file (upsert by id)."""
    from reviewer.ingest import ingest_jsonl
    from store.timeutil import fmt_ts, utcnow

    with handled(), open_app(ctx) as app:
        report = ingest_jsonl(app.store, file, "tasks", now=fmt_ts(utcnow()))
    _report_ingest(report, as_json)


@ingest.command("metrics")
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
@pass_ctx
def ingest_metrics(ctx: Context, file: str, as_json: bool) -> None:
    """Load task metrics from a JSON Lines file."""
    from reviewer.ingest import ingest_jsonl
    from store.timeutil import fmt_ts, utcnow

    with handled(), open_app(ctx) as app:
        report = ingest_jsonl(app.store, file, "metrics", now=fmt_ts(utcnow()))
    _report_ingest(report, as_json)


@ingest.command("junit")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--run-id", required=True, help="The test run these files belong to.")
@click.option("--commit", required=True, help="The commit the tests ran on.")
@click.option("--branch", default=None, help="The branch, if any.")
@json_option
@pass_ctx
def ingest_junit_cmd(
    ctx: Context,
    files: tuple[str, ...],
    run_id: str,
    commit: str,
    branch: str | None,
    as_json: bool,
) -> None:
    """Load JUnit XML test results of one run."""
    from reviewer.ingest import ingest_junit
    from store.timeutil import fmt_ts, utcnow

    with handled(), open_app(ctx) as app:
        report = ingest_junit(
            app.store, files, run_id=run_id, commit=commit, branch=branch, now=fmt_ts(utcnow())
        )
    _report_ingest(report, as_json)


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
    from store.timeutil import fmt_ts, utcnow

    with handled(), open_app(ctx) as app:
        report = ingest_coverage(
            app.store, file, commit=commit, branch=branch, now=fmt_ts(utcnow())
        )
    _report_ingest(report, as_json)
