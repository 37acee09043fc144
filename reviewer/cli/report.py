"""``reviewer report``: per rule, what the reviewer proposed and whether it helped."""

from __future__ import annotations

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
    table,
)


@cli.command("report")
@click.option("--no-hints", is_flag=True, help="Skip the tuning hints (they replay 7 days).")
@json_option
@pass_ctx
def report(ctx: Context, no_hints: bool, as_json: bool) -> None:
    """The precision ledger: findings, decisions, outcomes, breakers and tuning hints."""
    from reviewer.ledger import ledger

    with handled(), open_app(ctx) as app:
        data = ledger(app, hints=not no_hints)
    if as_json:
        emit_json(data)
        return
    _print(data)


def _print(data: dict[str, Any]) -> None:
    s = data["settings"]
    click.echo(
        f"As of {data['now']}. A filed task fixed its finding when the finding cleared within "
        f"{s['outcome_cycles']} cycle(s) after the task completed and stayed clear for "
        f"{s['outcome_clear_for']}."
    )
    rows = [
        {
            **r,
            # The approval in force: "manual (breaker)" while a tripped breaker holds an auto rule.
            "approval": (r["effective_approval"] or "-") + (" (breaker)" if r["breaker"] else ""),
            "not-fixed": r["not_fixed"],
            "median fix": r["median_time_to_fix"],
        }
        for r in data["rules"]
    ]
    table(
        rows,
        [
            "rule",
            "approval",
            "findings",
            "proposals",
            "approvals",
            "auto",
            "rejections",
            "fixed",
            "not-fixed",
            "regressed",
            "abandoned",
            "awaiting",
            "median fix",
        ],
    )
    for r in data["rules"]:
        if r["breaker"]:
            b = r["breaker"]
            click.echo(
                f"\nBreaker: {r['rule']} is on manual since {b['tripped_at']}: {b['reason']}"
                f"\n  reset: {b['reset']} --reason '...'"
            )
        if r["rejection_reasons"]:
            click.echo(f"\nWhy {r['rule']} proposals were rejected:")
            for item in r["rejection_reasons"]:
                click.echo(f"  {item['n']:>4}  {item['reason'] or '(no reason given)'}")
        hint = r["hint"]
        if hint:
            click.echo(f"\nTuning hint for {r['rule']}: {hint.get('why') or hint.get('note')}")
            bt = hint.get("backtest")
            if bt:
                click.echo(
                    f"  backtest {bt['from']} .. {bt['to']} every {bt['step']}: "
                    f"{bt['findings_before']} finding(s) -> {bt['findings_after']}, "
                    f"{bt['firings_before']} firing(s) -> {bt['firings_after']}; "
                    f"{bt['quieted_unwanted']} of the quieted were rejected or not fixed"
                )
                click.echo(f"  replay it: {bt['command']}")
