"""``reviewer audit``: the audit trail (GET /api/audit)."""

from __future__ import annotations

import click

from reviewer.cli.base import Context, cli, emit_json, fail, json_option, open_app, pass_ctx, table


@cli.command()
@click.option("--rule", default=None, help="Only entries about this rule.")
@click.option(
    "--action", default=None, help="An action (proposal.approved) or a prefix (proposal)."
)
@click.option("--actor", default=None, help="Who: a token's name, a user name, or reviewer.")
@click.option("--since", default=None, help="Entries at or after this time (ISO 8601).")
@click.option("--limit", default=200, show_default=True, help="The newest this many entries.")
@json_option
@pass_ctx
def audit(
    ctx: Context,
    rule: str | None,
    action: str | None,
    actor: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The audit trail: who changed what, when and why (newest first)."""
    from reviewer.audit import audit_entries

    with open_app(ctx, read_only=True) as app:
        try:
            items = audit_entries(
                app.state, rule=rule, action=action, actor=actor, since=since, limit=limit
            )
        except ValueError as exc:
            fail(f"--{exc}", 2)
    if as_json:
        emit_json(items)
        return
    rows = [
        {
            **e,
            "what": e["action"]
            + (f" #{e['proposal_id']}" if e["proposal_id"] else "")
            + (f" {e['from_state']}->{e['to_state']}" if e["from_state"] else ""),
            "about": " ".join(x for x in (e["rule"], e["subject"]) if x),
        }
        for e in items
    ]
    table(rows, ["at", "actor", "what", "about", "reason"], empty="no audit entries")
