"""Human-readable output of a review cycle."""

from __future__ import annotations

from collections import Counter

import click

from reviewer.engine import ReviewResult


def print_review(result: ReviewResult) -> None:
    """Print what a cycle found and proposed, most severe first."""
    head = f"review as of {result.now}"
    if result.run_id is not None:
        head += f" (run {result.run_id})"
    if result.dry_run:
        head += " [dry run: nothing written]"
    click.echo(head)
    order = {"critical": 0, "error": 1, "warning": 2, "info": 3}
    findings = sorted(
        result.findings, key=lambda f: (order.get(f["severity"], 9), f["rule"], f["subject"])
    )
    by_rule = Counter(f["rule"] for f in findings)
    click.echo(
        f"{len(findings)} finding(s)"
        + (": " + ", ".join(f"{r} {n}" for r, n in sorted(by_rule.items())) if by_rule else "")
    )
    for f in findings:
        flags = []
        if f.get("status") in ("new", "regressed"):
            flags.append(f["status"])
        if f.get("silenced_by"):
            flags.append(f"silenced by #{f['silenced_by']}")
        if f.get("incident"):
            flags.append(f"inhibited by {f.get('incident_kind', 'incident')} {f['incident']}")
        flag = f" [{', '.join(flags)}]" if flags else ""
        click.echo(f"  {f['severity']:<8} {f['rule']}/{f['kind']:<18} {f['subject']}{flag}")
        click.echo(f"           {f['summary']}")
    changed = [p for p in result.proposals if p.get("change")]
    if changed:
        click.echo(f"{len(changed)} proposal change(s):")
        for p in changed:
            where = f" → task {p['task_id']}" if p.get("task_id") else ""
            click.echo(f"  #{p['id']:<4} {p['change']:<10} {p['state']:<9} {p['title']}{where}")
    if result.controls:
        click.echo(f"{len(result.controls)} control change(s):")
        for c in result.controls:
            what = f"until {c['expires_at']}" if c["change"] == "applied" else c["lift_reason"]
            click.echo(f"  #{c['id']:<4} {c['change']:<10} {c['kind']} {c['target']}: {what}")
    if result.outcomes:
        click.echo(f"{len(result.outcomes)} outcome(s) of filed tasks (reviewer report):")
        for o in result.outcomes:
            click.echo(f"  #{o['id']:<4} {o['outcome']:<10} {o['reason']}")
    for note in result.notes:
        click.echo(f"note: {note}")
    for err in result.errors:
        where = f"rule {err['rule']}" if err.get("rule") else err.get("stage", "engine")
        click.echo(f"error: {where}: {err['error']}", err=True)
