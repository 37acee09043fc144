"""The ``reviewer`` command line.

Exit codes: 0 ok, 1 the command failed, 2 bad usage or bad config.
Every listing takes ``--json``.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from reviewer.config import Config, ConfigError, find_config_path, load_config
from store.timeutil import fmt_ts, parse_duration, parse_ts, utcnow

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
            path = find_config_path(self.config_path)
            overrides = {"store": self.store_url} if self.store_url else None
            self._config = load_config(path, overrides)
        return self._config


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"reviewer: {message}", err=True)
    sys.exit(code)


@contextmanager
def handled() -> Iterator[None]:
    """Turn the errors a user can meet into messages and exit codes."""
    from reviewer.render import TemplateError
    from store.base import StoreError
    from store.state import InvalidTransition, NotFound

    try:
        yield
    except ConfigError as exc:
        fail(str(exc), 2)
    except (NotFound, InvalidTransition, StoreError, TemplateError) as exc:
        fail(str(exc), 1)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


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


def _iso(_: Any, __: Any, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_ts(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time, like 2026-03-01T12:00:00Z"
        ) from None


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "cli"


# -- the group ------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: $REVIEWER_CONFIG, then ./config.toml, then built-in defaults).",
)
@click.option("--store", "store_url", default=None, help="Store URL; overrides [reviewer] store.")
@click.option("--log-level", default="WARNING", show_default=True, help="Logging level.")
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


def open_app(ctx: Context) -> Any:
    from reviewer.app import App

    return App.from_config(ctx.config)


# -- review -----------------------------------------------------------------------------
@cli.command()
@click.option("--once", is_flag=True, required=True, help="Run one cycle and exit (required).")
@click.option("--now", callback=_iso, help="Review the store as of this instant (ISO 8601).")
@click.option("--dry-run", is_flag=True, help="Compute findings and proposals; write nothing.")
@json_option
@pass_ctx
def review(ctx: Context, once: bool, now: datetime | None, dry_run: bool, as_json: bool) -> None:
    """Run one review cycle."""
    with handled(), open_app(ctx) as app:
        result = app.engine.review(now, dry_run=dry_run, trigger="once")
    if as_json:
        _emit_json(result.public())
    else:
        from reviewer.report import print_review

        print_review(result)
    if result.status == "failed":
        sys.exit(1)


@cli.command()
@click.option("--from", "start", callback=_iso, required=True, help="First instant (ISO 8601).")
@click.option("--to", "end", callback=_iso, required=True, help="Last instant (ISO 8601).")
@click.option("--step", required=True, help="Time between replayed reviews, like 1h or 1d.")
@json_option
@pass_ctx
def backtest(ctx: Context, start: datetime, end: datetime, step: str, as_json: bool) -> None:
    """Replay history and report when each finding would first have fired and cleared."""
    try:
        step_td = parse_duration(step)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--step") from None
    if end < start:
        raise click.BadParameter("--to is before --from", param_hint="--to")
    if step_td.total_seconds() <= 0:
        raise click.BadParameter("must be positive", param_hint="--step")
    from reviewer.backtest import backtest as run_backtest

    with handled(), open_app(ctx) as app:
        events = run_backtest(app.engine, start, end, step_td)
        if as_json:
            for item in events:
                click.echo(json.dumps(item, default=str))
            return
        table(
            events,
            ["rule", "kind", "subject", "severity", "first_fired_at", "cleared_at", "summary"],
            empty="no finding would have fired in that window",
        )


# -- ingest -----------------------------------------------------------------------------
@cli.group()
def ingest() -> None:
    """Load pipeline records into the store."""


def _report_ingest(report: Any, as_json: bool) -> None:
    if as_json:
        _emit_json(report.public())
    else:
        for msg in report.rejected:
            click.echo(f"rejected: {msg}", err=True)
        click.echo(f"stored {report.stored} record(s), rejected {len(report.rejected)}")
    if report.rejected:
        sys.exit(1)


@ingest.command("tasks")
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
@pass_ctx
def ingest_tasks(ctx: Context, file: str, as_json: bool) -> None:
    """Load tasks from a JSON Lines file (upsert by id)."""
    from reviewer.ingest import ingest_jsonl

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

    with handled(), open_app(ctx) as app:
        report = ingest_junit(
            app.store, files, run_id=run_id, commit=commit, branch=branch, now=fmt_ts(utcnow())
        )
    _report_ingest(report, as_json)


# -- proposals ------------------------------------------------------------------------
@cli.group()
def proposals() -> None:
    """List, show and decide proposals."""


@proposals.command("list")
@click.option(
    "--state", default=None, help="pending, approved, scheduled, rejected, resolved, superseded."
)
@click.option("--rule", default=None, help="Only this rule's proposals.")
@click.option("--limit", default=200, show_default=True)
@json_option
@pass_ctx
def proposals_list(
    ctx: Context, state: str | None, rule: str | None, limit: int, as_json: bool
) -> None:
    """List proposals, newest first."""
    with handled(), open_app(ctx) as app:
        items = app.state.proposals(state=state, rule=rule, limit=limit)
    if as_json:
        _emit_json([p.public() for p in items])
        return
    table(
        [p.public() for p in items],
        ["id", "state", "severity", "rule", "kind", "subject", "task_id", "title"],
        empty="no proposals",
    )


@proposals.command("show")
@click.argument("proposal_id", type=int)
@json_option
@pass_ctx
def proposals_show(ctx: Context, proposal_id: int, as_json: bool) -> None:
    """Show one proposal with its body and audit trail."""
    with handled(), open_app(ctx) as app:
        proposal = app.state.proposal(proposal_id)
        trail = app.state.audit_log(proposal_id)
    if as_json:
        _emit_json({**proposal.public(), "audit": trail})
        return
    p = proposal
    click.echo(f"#{p.id} {p.title}")
    click.echo(
        f"state {p.state.value} · {p.severity.value} · rule {p.rule} · kind {p.kind}"
        f" · subject {p.subject} · approval {p.approval.value}"
        + (f" · task {p.task_id}" if p.task_id else "")
    )
    click.echo("")
    click.echo(p.body)
    click.echo("Audit:")
    for entry in trail:
        click.echo(
            f"  {entry['at']}  {entry['actor']:<12} {entry['action']:<20} {entry['reason'] or ''}"
        )


@proposals.command("approve")
@click.argument("proposal_id", type=int)
@click.option("--by", default=None, help="Who approves (default: your user name).")
@click.option("--reason", default=None, help="Why.")
@json_option
@pass_ctx
def proposals_approve(
    ctx: Context, proposal_id: int, by: str | None, reason: str | None, as_json: bool
) -> None:
    """Approve a proposal and file its backlog task (exactly once)."""
    with handled(), open_app(ctx) as app:
        before = app.state.proposal(proposal_id)
        p = app.engine.approve(proposal_id, by=by or _who(), reason=reason)
    if as_json:
        _emit_json(p.public())
    elif before.state.value == "scheduled":
        click.echo(f"proposal {p.id} was already scheduled as backlog task {p.task_id}")
    else:
        click.echo(f"approved proposal {p.id}; filed backlog task {p.task_id}")


@proposals.command("reject")
@click.argument("proposal_id", type=int)
@click.option("--by", default=None, help="Who rejects (default: your user name).")
@click.option("--reason", default=None, help="Why; kept in the audit log.")
@json_option
@pass_ctx
def proposals_reject(
    ctx: Context, proposal_id: int, by: str | None, reason: str | None, as_json: bool
) -> None:
    """Reject a proposal; it is not proposed again within the cooldown."""
    with handled(), open_app(ctx) as app:
        p = app.engine.reject(proposal_id, by=by or _who(), reason=reason)
        cooldown = app.config.reviewer.reject_cooldown
    if as_json:
        _emit_json(p.public())
    else:
        from store.timeutil import fmt_duration

        click.echo(f"rejected proposal {p.id}; not proposed again for {fmt_duration(cooldown)}")


# -- findings, runs -------------------------------------------------------------------
@cli.group()
def findings() -> None:
    """Inspect findings."""


@findings.command("list")
@click.option(
    "--state", type=click.Choice(["open", "resolved", "all"]), default="open", show_default=True
)
@click.option("--rule", default=None)
@click.option("--limit", default=500, show_default=True)
@json_option
@pass_ctx
def findings_list(ctx: Context, state: str, rule: str | None, limit: int, as_json: bool) -> None:
    """List findings, most severe first."""
    with handled(), open_app(ctx) as app:
        rows = app.state.list_findings(None if state == "all" else state, rule, limit)
    items = [
        {
            **json.loads(r["payload"]),
            "state": r["state"],
            "first_seen": r["first_seen"],
            "last_seen": r["last_seen"],
            "times_seen": r["times_seen"],
            "regressions": r["regressions"],
        }
        for r in rows
    ]
    if as_json:
        _emit_json(items)
        return
    table(
        items,
        ["severity", "rule", "kind", "subject", "state", "first_seen", "summary"],
        empty="no findings",
    )


@cli.group()
def runs() -> None:
    """Inspect review runs."""


@runs.command("list")
@click.option("--limit", default=20, show_default=True)
@json_option
@pass_ctx
def runs_list(ctx: Context, limit: int, as_json: bool) -> None:
    """List recent review runs."""
    with handled(), open_app(ctx) as app:
        items = [r.public() for r in app.state.runs(limit)]
    if as_json:
        _emit_json(items)
        return
    for r in items:
        r["errors"] = len(r["errors"])
    table(
        items,
        [
            "id",
            "now",
            "status",
            "trigger",
            "findings",
            "new_proposals",
            "held_back",
            "resolved",
            "errors",
            "duration_ms",
        ],
        empty="no runs yet",
    )


# -- silences ---------------------------------------------------------------------------
@cli.group()
def silence() -> None:
    """Silence findings by rule and subject pattern until a time."""


@silence.command("add")
@click.option("--rule", required=True, help="Rule ID (glob allowed, e.g. 'usage-*').")
@click.option("--subject", required=True, help="Subject glob, e.g. 'task-12*' or 'model:*'.")
@click.option("--until", "until", callback=_iso, required=True, help="ISO 8601 end time.")
@click.option("--by", default=None, help="Who silences (default: your user name).")
@click.option("--comment", required=True, help="Why; kept with the silence.")
@json_option
@pass_ctx
def silence_add(
    ctx: Context,
    rule: str,
    subject: str,
    until: datetime,
    by: str | None,
    comment: str,
    as_json: bool,
) -> None:
    """Add a silence."""
    from rules import REGISTRY

    now = utcnow()
    if until <= now:
        raise click.BadParameter("must be in the future", param_hint="--until")
    import fnmatch

    if not any(fnmatch.fnmatchcase(r, rule) for r in REGISTRY):
        raise click.BadParameter(
            f"{rule!r} matches no rule; known rules: {', '.join(REGISTRY)}", param_hint="--rule"
        )
    with handled(), open_app(ctx) as app, app.store.transaction():
        s = app.state.add_silence(
            rule=rule,
            subject=subject,
            until=fmt_ts(until),
            by=by or _who(),
            comment=comment,
            at=fmt_ts(now),
        )
    if as_json:
        _emit_json(s.public())
    else:
        click.echo(f"silence {s.id}: {rule} {subject} until {s.until}")


@silence.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@json_option
@pass_ctx
def silence_list(ctx: Context, show_all: bool, as_json: bool) -> None:
    """List silences in force (or all of them)."""
    with handled(), open_app(ctx) as app:
        items = [s.public() for s in app.state.silences(fmt_ts(utcnow()), include_expired=show_all)]
    if as_json:
        _emit_json(items)
        return
    table(
        items,
        ["id", "rule", "subject", "until", "created_by", "expired_at", "comment"],
        empty="no silences",
    )


@silence.command("expire")
@click.argument("silence_id", type=int)
@click.option("--by", default=None)
@click.option("--reason", default=None)
@json_option
@pass_ctx
def silence_expire(
    ctx: Context, silence_id: int, by: str | None, reason: str | None, as_json: bool
) -> None:
    """End a silence now."""
    with handled(), open_app(ctx) as app, app.store.transaction():
        s = app.state.expire_silence(
            silence_id, by=by or _who(), at=fmt_ts(utcnow()), reason=reason
        )
    if as_json:
        _emit_json(s.public())
    else:
        click.echo(f"silence {s.id} expired")


# -- config -------------------------------------------------------------------------------
@cli.group("config")
def config_group() -> None:
    """Check the configuration."""


@config_group.command("check")
@json_option
@pass_ctx
def config_check(ctx: Context, as_json: bool) -> None:
    """Validate config.toml and the proposal templates."""
    from reviewer.render import Renderer

    with handled():
        cfg = ctx.config
        problems = Renderer(cfg.resolve(cfg.reviewer.templates_dir)).check()
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
    summary = {
        "config": str(cfg.path) if cfg.path else None,
        "store": cfg.store_url,
        "rules": rules_summary,
    }
    if as_json:
        _emit_json(summary)
        return
    click.echo(f"{summary['config'] or 'built-in defaults'}: OK")
    click.echo(f"store: {summary['store']}")
    table(
        [{"rule": k, **v} for k, v in rules_summary.items()],
        ["rule", "enabled", "severity", "approval"],
    )


# -- rules ------------------------------------------------------------------------------------
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
        _emit_json(items)
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
    for key, value in shown.items():
        click.echo(f"  {key} = {json.dumps(value, default=str)}")


# -- daemon and demo -------------------------------------------------------------------------
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


from reviewer import cli_pipeline  # noqa: E402,F401  (registers metrics, ab, goals)

if __name__ == "__main__":  # pragma: no cover
    main()
