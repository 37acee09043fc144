"""``reviewer migrate --from URL --to URL``: move a store (backlog and reviewer state)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from reviewer.cli.base import Context, cli, emit_json, fail, handled, json_option, pass_ctx, table
from reviewer.cli.base import who as cli_user


@cli.command("migrate")
@click.option("--from", "source_url", required=True, help="The store to copy, e.g. sqlite:///a.db")
@click.option(
    "--to", "target_url", required=True, help="The store to fill, e.g. postgresql://host/db"
)
@click.option(
    "--replace",
    is_flag=True,
    help="Delete the rows the target already holds first (it is refused otherwise).",
)
@click.option("--batch", default=5000, show_default=True, type=click.IntRange(1, 1_000_000))
@json_option
@pass_ctx
def migrate(
    ctx: Context, source_url: str, target_url: str, replace: bool, batch: int, as_json: bool
) -> None:
    """Copy every table of one store into another, then compare counts and checksums.

    Stop the daemon and other writers of the source first. Exit 1 when a
    table's count or checksum differs.
    """
    from store import open_store
    from store.secrets import redact
    from store.state import ReviewerState
    from store.timeutil import fmt_ts, utcnow
    from store.transfer import copy_store

    if source_url == target_url:
        fail("--from and --to name the same store", 2)
    for flag, url in (("--from", source_url),):
        if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
            fail(f"{flag} {url}: no such file", 2)
    # One bar per table on a terminal (an empty table gets none), the last one closed
    # when the next table starts.
    bar: list[Any] = [None, None]  # [table, progress bar]
    show = not as_json and sys.stderr.isatty()

    def end_bar() -> None:
        if bar[1] is not None:
            bar[1].__exit__(None, None, None)
        bar[:] = [None, None]

    def progress(table_name: str, done: int, total: int) -> None:
        if not show:
            return
        if bar[0] != table_name:
            end_bar()
            if total == 0:
                return
            shown = click.progressbar(
                length=total, label=f"{table_name:<24}", file=sys.stderr, show_pos=True
            )
            bar[:] = [table_name, shown.__enter__()]
        if bar[1] is not None:
            bar[1].update(done - bar[1].pos)

    started = time.monotonic()
    with handled():
        source = open_store(source_url)
        try:
            target = open_store(target_url)
            try:
                try:
                    reports = copy_store(
                        source, target, batch=batch, replace=replace, progress=progress
                    )
                finally:
                    end_bar()
                took = time.monotonic() - started
                rows = sum(r.source_rows for r in reports)
                ok = all(r.ok for r in reports)
                # Recorded after the check, so the check compares the copied rows only.
                with target.transaction():
                    ReviewerState(target).audit(
                        fmt_ts(utcnow()),
                        cli_user(),
                        "store.migrated",
                        reason=f"reviewer migrate --from {redact(source_url)}",
                        details={"rows": rows, "tables": len(reports), "checks_ok": ok},
                    )
            finally:
                target.close()
        finally:
            source.close()
    tables = [r.public() for r in reports]
    summary = {
        "from": redact(source_url),
        "to": redact(target_url),
        "rows": rows,
        "seconds": round(took, 2),
        "rows_per_second": round(rows / took) if took > 0 else None,
        "ok": ok,
        "tables": tables,
    }
    if as_json:
        emit_json(summary)
    else:
        table(
            tables,
            ["table", "source_rows", "target_rows", "source_checksum", "target_checksum", "ok"],
        )
        click.echo(
            f"{rows} rows in {took:.1f} s ({summary['rows_per_second']} rows/s) "
            f"from {summary['from']} to {summary['to']}: "
            + ("every count and checksum matches" if ok else "MISMATCH, see the table above")
        )
    if not ok:
        sys.exit(1)
