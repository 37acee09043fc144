"""The findings of flaky-tests, worded for the human who has to act on them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rules.contract import ControlKind, ControlSpec, Finding
from store.timeutil import fmt_duration

Row = dict[str, Any]

# Enough of a SHA to find the commit, short enough to read in a sentence.
_SHA = 12
_MESSAGE_CHARS = 160


def _sha(commit: str | None) -> str:
    return (commit or "?")[:_SHA]


def _quote(message: str) -> str:
    text = " ".join(message.split())
    if not text:
        return "(no message)"
    if len(text) > _MESSAGE_CHARS:
        text = text[: _MESSAGE_CHARS - 1] + "…"
    return f'"{text}"'


def _messages(details: list[Row], limit: int) -> tuple[list[dict[str, Any]], int]:
    """The most frequent failure messages first (latest breaking ties), and how many exist."""
    rows = sorted((d for d in details if d["item"] == "message"), key=lambda d: d["value"])
    rows.sort(key=lambda d: d["last_at"], reverse=True)
    rows.sort(key=lambda d: int(d["n"]), reverse=True)
    # A run that gave no message is counted too, under no "message" key.
    shown = [
        {"message": d["value"], "count": int(d["n"])} if d["value"] else {"count": int(d["n"])}
        for d in rows[:limit]
    ]
    return shown, len(rows)


def _pcts(rate: tuple[float, float, float]) -> str:
    point, low, high = rate
    return f"{point:.1%} (95% interval {low:.1%}–{high:.1%})"


def flaky_finding(
    row: Row,
    details: list[Row],
    window: int,
    max_messages: int,
    rate_interval: tuple[float, float, float],
    streak_chance: float,
) -> Finding:
    """A ``flaky`` finding: the proof, the messages, and a quarantine to propose."""
    test = row["test_id"]
    runs, flips = int(row["runs"]), int(row["flips"])
    rate = round(flips / (runs - 1), 3) if runs > 1 else 0.0
    commits = sorted(
        (d for d in details if d["item"] == "commit"), key=lambda d: d["last_at"], reverse=True
    )
    messages, distinct = _messages(details, max_messages)
    reasons = []
    if commits:
        shown = ", ".join(_sha(d["value"]) for d in commits[:3])
        more = f" and {len(commits) - 3} more" if len(commits) > 3 else ""
        reasons.append(f"passed and failed on the same commit ({shown}{more})")
    if row["rerun_flaky"]:
        reasons.append(f"failed then passed on a rerun in {row['rerun_flaky']} run(s)")
    reasons.append(f"flipped between pass and fail {flips} time(s) in {runs} runs (rate {rate})")
    failures = int(row["failures"])
    streak = int(row["passes_since_failure"])
    reasons.append(
        f"failed {failures} of {runs} runs, {_pcts(rate_interval)}; the {streak} pass(es) "
        f"since its last failure come by chance {streak_chance:.2g} of the time at that rate, "
        "so it has not recovered"
    )
    message_text = "; ".join(f"{_quote(m.get('message', ''))} ×{m['count']}" for m in messages)
    if distinct > len(messages):
        message_text += f"; and {distinct - len(messages)} other message(s)"
    return Finding(
        kind="flaky",
        subject=test,
        summary=f"{test} is flaky: it " + "; it ".join(reasons) + ".",
        evidence={
            "runs": runs,
            "failures": int(row["failures"]),
            "flips": flips,
            "flip_rate": rate,
            "failure_rate": round(rate_interval[0], 4),
            "failure_rate_low": round(rate_interval[1], 4),
            "failure_rate_high": round(rate_interval[2], 4),
            "streak_chance": float(f"{streak_chance:.3g}"),
            "window": window,
            "mixed_commits": [d["value"] for d in commits],
            "rerun_flaky_runs": int(row["rerun_flaky"]),
            "messages": messages,
            "distinct_messages": distinct,
            "last_failure_at": row["last_failure_at"],
            "passes_since_failure": int(row["passes_since_failure"]),
        },
        title=f"Quarantine flaky test {test}",
        why=(
            "A flaky test fails builds that did nothing wrong: people learn to retry instead "
            "of reading failures, and real regressions hide in the noise."
        ),
        action=(
            f"Quarantine {test} (keep running it, but do not let it fail the build), then find "
            f"and fix the cause of its nondeterminism. Failures seen: {message_text or 'none'}. "
            + (
                "Commits where it both passed and failed: "
                + ", ".join(_sha(d["value"]) for d in commits)
                + ". "
                if commits
                else ""
            )
            + f"Flip rate {rate} over its last {runs} runs. Lift the quarantine once it passes "
            "reliably."
        ),
        remedy="quarantine",
        control=ControlSpec(kind=ControlKind.quarantine, target=f"test:{test}"),
        task_type="test",
        related=[test],
    )


def broken_finding(row: Row, streak: Row | None, chance: float) -> Finding:
    """A ``broken`` finding: where the failing began, and a fix to propose."""
    test = row["test_id"]
    runs = int(streak["streak_runs"]) if streak else int(row["streak"])
    first_at = streak["first_failed_at"] if streak else None
    first_commit = streak["first_failed_commit"] if streak else None
    passed_commit = streak["last_passed_commit"] if streak else None
    since = f"since commit {_sha(first_commit)}" if first_commit else "in every run"
    last_pass = (
        f"it last passed on commit {_sha(passed_commit)}"
        if passed_commit
        else "it has never passed"
    )
    return Finding(
        kind="broken",
        subject=test,
        summary=(
            f"{test} has failed all {runs} runs {since} ({first_at}); {last_pass}. A streak "
            f"that long would come by chance {chance:.2g} of the time at its earlier failure rate."
        ),
        evidence={
            "failing_runs": runs,
            "first_failing_commit": first_commit,
            "first_failed_at": first_at,
            "last_passing_commit": passed_commit,
            "last_passed_at": streak["last_passed_at"] if streak else None,
            "last_run_at": row["last_run_at"],
            "streak_chance": float(f"{chance:.3g}"),
        },
        title=f"Fix broken test {test} (failing since {_sha(first_commit)})",
        why=(
            "A test that fails on every run since one commit is not flaky: a change broke it "
            "or broke what it tests. Quarantining it would hide a real regression."
        ),
        action=(
            f"Look at what changed between commit {_sha(passed_commit)} (last pass) and "
            f"{_sha(first_commit)} (first failure), then fix the code or the test so {test} "
            "passes again."
            if passed_commit
            else f"{test} has not passed since it first ran on commit {_sha(first_commit)}: "
            "fix it, or the code it tests."
        ),
        remedy="fix",
        task_type="heal",
        related=[test],
    )


def holdout_finding(row: Row, skipped_for: timedelta, limit: timedelta) -> Finding:
    """A ``holdout`` finding: how long the test has been skipped, and why it says."""
    test = row["test_id"]
    reason = row["message"] or ""
    skipped_days = skipped_for.total_seconds() / 86400
    limit_days = limit.total_seconds() / 86400
    return Finding(
        kind="holdout",
        subject=test,
        summary=(
            f"{test} has been skipped in all {row['skipped_runs']} runs for "
            f"{fmt_duration(skipped_for)} "
            f"(since {row['skipped_since']}; limit {fmt_duration(limit)}, "
            f"{skipped_days / limit_days:.1f}× the limit): {_quote(reason)}."
        ),
        evidence={
            "skipped_since": row["skipped_since"],
            "skipped_runs": int(row["skipped_runs"]),
            "last_ran_at": row["last_ran_at"],
            "skip_message": reason or None,
            "skipped_days": round(skipped_days, 1),
            "limit_days": round(limit_days, 1),
        },
        title=f"Re-enable or delete long-skipped test {test}",
        why=(
            "A test skipped for weeks checks nothing while still looking like coverage; "
            "whatever it was skipped for has either been fixed or been forgotten."
        ),
        action=(
            f"Find out why {test} is skipped ({_quote(reason)}). If the reason is gone, "
            "remove the skip; if the test is no longer wanted, delete it."
        ),
        remedy="re-enable",
        task_type="test",
        related=[test],
    )
