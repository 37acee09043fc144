"""``reviewer proposals list|show|approve|reject``."""

from __future__ import annotations

import click

from reviewer.cli.base import (
    Context,
    cli,
    emit_json,
    handled,
    json_option,
    open_app,
    pass_ctx,
    table,
    who,
)

# The proposal states (store.models.ProposalState), written out so --help loads no pydantic.
STATES = ("pending", "approved", "scheduled", "rejected", "resolved", "superseded")


@cli.group()
def proposals() -> None:
    """List, show and decide proposals."""


@proposals.command("list")
@click.option(
    "--state",
    default=None,
    type=click.Choice([*STATES, "all"]),
    help="Only proposals in this state (default: all).",
)
@click.option("--rule", default=None, help="Only this rule's proposals.")
@click.option("--limit", default=200, show_default=True)
@json_option
@pass_ctx
def proposals_list(
    ctx: Context, state: str | None, rule: str | None, limit: int, as_json: bool
) -> None:
    """List proposals, newest first."""
    with handled(), open_app(ctx, read_only=True) as app:
        items = app.state.proposals(state=None if state == "all" else state, rule=rule, limit=limit)
    if as_json:
        emit_json([p.public() for p in items])
        return
    table(
        [p.public() for p in items],
        ["id", "state", "severity", "rule", "kind", "subject", "task_id", "outcome", "title"],
        empty="no proposals",
    )


@proposals.command("show")
@click.argument("proposal_id", type=int)
@json_option
@pass_ctx
def proposals_show(ctx: Context, proposal_id: int, as_json: bool) -> None:
    """Show one proposal with its body and audit trail."""
    with handled(), open_app(ctx, read_only=True) as app:
        proposal = app.state.proposal(proposal_id)
        trail = app.state.audit_log(proposal_id)
    if as_json:
        emit_json({**proposal.public(), "audit": trail})
        return
    p = proposal
    click.echo(f"#{p.id} {p.title}")
    click.echo(
        f"state {p.state.value} · {p.severity.value} · rule {p.rule} · kind {p.kind}"
        f" · subject {p.subject} · approval {p.approval.value}"
        + (f" · task {p.task_id}" if p.task_id else "")
        + (f" · outcome {p.outcome.value} ({p.outcome_at})" if p.outcome else "")
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
        p = app.engine.approve(proposal_id, by=by or who(), reason=reason)
    if as_json:
        emit_json(p.public())
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
        before = app.state.proposal(proposal_id)
        p = app.engine.reject(proposal_id, by=by or who(), reason=reason)
        cooldown = app.config.reviewer.reject_cooldown
    if as_json:
        emit_json(p.public())
    elif before.state.value == "rejected":
        by = p.decided_by or "-"
        click.echo(f"proposal {p.id} was already rejected by {by}; nothing changed")
    else:
        from store.timeutil import fmt_duration

        click.echo(f"rejected proposal {p.id}; not proposed again for {fmt_duration(cooldown)}")
