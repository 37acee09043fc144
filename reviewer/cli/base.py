"""What every command shares: the ``reviewer`` group, its context (the config, opened
on first use), error handling, tables and ``--json``.

Exit codes: 0 ok, 1 the command failed, 2 bad usage or bad config.
Every listing takes ``--json``. Nothing heavy is imported here: each command
imports what it needs when it runs, so ``reviewer --help`` starts fast.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from store.finite import dumps

if TYPE_CHECKING:
    from reviewer.config import Config


F = TypeVar("F", bound=Callable[..., Any])


class Context:
    """What every command shares: the config, opened on first use."""

    def __init__(self, config_path: str | None, store_url: str | None, log_level: str):
        self.config_path = config_path
        self.store_url = store_url
        self.log_level = log_level
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from reviewer.config import find_config_path, load_config

            path = find_config_path(self.config_path)
            overrides = {"store": self.store_url} if self.store_url else None
            self._config = load_config(path, overrides)
        return self._config


def fail(message: str, code: int = 1) -> NoReturn:
    from store.secrets import redact

    click.echo(f"reviewer: {redact(message)}", err=True)
    sys.exit(code)


@contextmanager
def handled() -> Iterator[None]:
    """Turn the errors a user can meet into messages and exit codes.

    The one error-to-message layer of the command line: ``ReviewerGroup`` runs
    every command inside it, so no command prints a traceback. A store locked
    by another writer, a store error, a bad config: each becomes one line
    saying what to do, exit 1 (2 for bad usage or config).
    """
    import sqlite3

    from reviewer.config import ConfigError
    from store.base import StoreError
    from store.state import InvalidTransition, NotFound

    try:
        yield
    except ConfigError as exc:
        fail(str(exc), 2)
    except (NotFound, InvalidTransition, StoreError) as exc:
        fail(str(exc), 1)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            fail(
                f"the store is locked by another writer ({exc}); nothing was written. "
                "Run the command again once that writer has finished.",
                1,
            )
        fail(f"store error: {exc}", 1)
    except (OSError, UnicodeError, ValueError, OverflowError, RecursionError) as exc:
        fail(f"{type(exc).__name__}: {exc}", 1)
    except Exception as exc:
        # A template error can only come from a loaded reviewer.render; looking it up
        # here, not importing it, keeps jinja2 out of the commands that render nothing.
        render = sys.modules.get("reviewer.render")
        if render is not None and isinstance(exc, render.TemplateError):
            fail(str(exc), 1)
        raise


class ReviewerGroup(click.Group):
    """The command group: every subcommand runs inside ``handled()``."""

    def invoke(self, ctx: click.Context) -> Any:
        with handled():
            return super().invoke(ctx)


def emit_json(data: Any) -> None:
    click.echo(dumps(data, indent=2))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, empty: str = "(none)") -> None:
    """Print rows as an aligned plain-text table."""
    if not rows:
        click.echo(empty)
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    widths = [min(w, 60) for w in widths]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v[:w].ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value).replace("\n", " ")


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)


def iso(_: Any, __: Any, value: str | None) -> datetime | None:
    from store.timeutil import parse_ts

    if value is None:
        return None
    try:
        return parse_ts(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time, like 2026-03-01T12:00:00Z"
        ) from None


def who() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "cli"


@click.group(cls=ReviewerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: $REVIEWER_CONFIG, then ./config.toml, then built-in defaults).",
)
@click.option("--store", "store_url", default=None, help="Store URL; overrides [reviewer] store.")
@click.option(
    "--log-level",
    default="WARNING",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    help="Logging level.",
)
@click.version_option(package_name="reviewer")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, store_url: str | None, log_level: str) -> None:
    """Review an AI-agent pipeline's backlog and metrics; propose improvement tasks."""
    from reviewer.logs import setup_logging

    setup_logging(log_level)
    ctx.obj = Context(config_path, store_url, log_level)


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=list(argv) if argv is not None else None, prog_name="reviewer")


pass_ctx = click.make_pass_decorator(Context)


def open_app(ctx: Context, *, read_only: bool = False) -> Any:
    """The opened ``App``. A ``read_only`` command never creates a SQLite store:
    when the file is missing it says where it looked and how to make one (exit 1)."""
    from reviewer.app import App

    config = ctx.config
    if read_only:
        missing = missing_sqlite_store(config.store_url)
        if missing is not None:
            import shlex

            fail(
                f"there is no store at {missing}; make one by loading the pipeline's records "
                f"(reviewer --store {shlex.quote('sqlite:///' + missing)} ingest tasks "
                "FILE.jsonl), try `reviewer demo`, or point --store or [reviewer] store "
                "at an existing store"
            )
    return App.from_config(config)


def missing_sqlite_store(url: str) -> str | None:
    """The path of a ``sqlite:///`` store whose file does not exist, else None."""
    from pathlib import Path

    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return None
    path = url[len("sqlite:///") :]
    return None if Path(path).exists() else path
