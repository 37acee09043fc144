"""``reviewer review`` (one cycle) and ``reviewer backtest`` (replayed history)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

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
)
from store.finite import dumps


@cli.command()
@click.option("--once", is_flag=True, required=True, help="Run one cycle and exit (required).")
@click.option("--now", callback=iso, help="Review the store as of this instant (ISO 8601).")
@click.option("--dry-run", is_flag=True, help="Compute findings and proposals; write nothing.")
@json_option
@pass_ctx
def review(ctx: Context, once: bool, now: datetime | None, dry_run: bool, as_json: bool) -> None:
    """Run one review cycle."""
    with handled(), open_app(ctx, read_only=dry_run) as app:
        if not dry_run:
            interrupted = app.mark_interrupted_runs()
            if interrupted:
                click.echo(
                    f"marked {interrupted} run(s) left running by a stopped process interrupted",
                    err=True,
                )
        result = app.engine.review(now, dry_run=dry_run, trigger="once")
    if as_json:
        emit_json(result.public())
    else:
        from reviewer.report import print_review

        print_review(result)
    if result.status == "failed":
        sys.exit(1)


@cli.command()
@click.option("--from", "start", callback=iso, required=True, help="First instant (ISO 8601).")
@click.option("--to", "end", callback=iso, required=True, help="Last instant (ISO 8601).")
@click.option("--step", required=True, help="Time between replayed reviews, like 1h or 1d.")
@json_option
@pass_ctx
def backtest(ctx: Context, start: datetime, end: datetime, step: str, as_json: bool) -> None:
    """Replay history and report when each finding would first have fired and cleared."""
    from store.timeutil import parse_duration

    try:
        step_td = parse_duration(step)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--step") from None
    if end < start:
        raise click.BadParameter("--to is before --from", param_hint="--to")
    if step_td.total_seconds() <= 0:
        raise click.BadParameter("must be positive", param_hint="--step")
    from reviewer.backtest import backtest as run_backtest
    from reviewer.backtest import step_count

    with handled(), open_app(ctx, read_only=True) as app:
        # A progress bar on a terminal only: never in --json output or a pipe or log.
        if as_json or not sys.stderr.isatty():
            events = run_backtest(app.engine, start, end, step_td)
        else:
            bar: Any
            with click.progressbar(
                length=step_count(start, end, step_td),
                label="replaying",
                file=sys.stderr,
                show_eta=True,
                show_pos=True,
                item_show_func=lambda at: at.strftime("%Y-%m-%d %H:%M") if at else None,
            ) as bar:
                events = run_backtest(
                    app.engine, start, end, step_td, on_step=lambda at: bar.update(1, at)
                )
        if as_json:
            for item in events:
                click.echo(dumps(item))
            return
        table(
            events,
            ["rule", "kind", "subject", "severity", "first_fired_at", "cleared_at", "summary"],
            empty="no finding would have fired in that window",
        )
