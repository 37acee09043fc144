"""backlog-hygiene's ``failure-signature``: one cause failing many tasks of one type."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from rules.backlog_hygiene.signature import signature
from rules.contract import Finding
from store import BacklogView


class Settings(Protocol):
    """The options of backlog-hygiene this check reads."""

    failure_window: timedelta
    failure_min_count: int
    failure_min_tasks: int
    failure_max_error: int
    failure_max_chance: float


_MAX_LISTED = 10


@dataclass
class _Group:
    task_type: str
    signature: str
    failures: int = 0
    duration: float = 0.0
    tasks: dict[str, int] = field(default_factory=dict)
    models: Counter[str] = field(default_factory=Counter)
    executors: Counter[str] = field(default_factory=Counter)
    example: str = ""
    last_at: str = ""
    type_failures: int = 0
    expected_share: float = 0.0
    chance: float = 1.0
    # The chance of a pair this extreme among all pairs judged (Bonferroni).
    family_chance: float = 1.0
    judged: int = 1


@dataclass
class _Runs:
    """One task type's executions in the window, by status."""

    runs: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    ok_models: Counter[str] = field(default_factory=Counter)
    executors: Counter[str] = field(default_factory=Counter)


def failure_signatures(options: Settings, view: BacklogView) -> Iterator[Finding]:
    from scipy.stats import binom  # here, not at the top: see rules/__init__.py

    since = view.ago(options.failure_window)
    groups: dict[tuple[str, str], _Group] = {}
    for row in view.failure_texts(since, options.failure_max_error):
        sig = signature(row["error"])
        if not sig:
            continue
        g = groups.setdefault((row["task_type"], sig), _Group(row["task_type"], sig))
        n = int(row["failures"])
        g.failures += n
        g.duration += float(row["duration"] or 0)
        g.tasks[row["task_id"]] = g.tasks.get(row["task_id"], 0) + n
        g.models[row["model"] or "(none)"] += n
        g.executors[row["executor"] or "(none)"] += n
        if row["last_at"] > g.last_at:
            g.last_at, g.example = row["last_at"], row["error"]
    # How common each signature is among the failures of every type, so a signature that
    # fails all types alike (background noise) is told from one a type has of its own.
    by_sig: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    for g in groups.values():
        by_sig[g.signature] += g.failures
        by_type[g.task_type] += g.failures
    everything = sum(by_type.values())
    judged = [
        g
        for g in groups.values()
        if g.failures >= options.failure_min_count and len(g.tasks) >= options.failure_min_tasks
    ]
    wanted = []
    for g in judged:
        n = by_type[g.task_type]
        # The signature's share of the other types' failures (add-one smoothed).
        g.expected_share = (by_sig[g.signature] - g.failures + 1) / (everything - n + 2)
        g.chance = float(binom.sf(g.failures - 1, n, g.expected_share))
        g.type_failures = n
        # Every pair judged is one more draw: a busy pipeline with dozens of (type,
        # signature) pairs shows one at 1 in 2,000 by chance now and then, so the limit
        # holds for the family (Bonferroni), not for each pair alone.
        g.judged = len(judged)
        g.family_chance = min(1.0, g.chance * g.judged)
        if g.family_chance <= options.failure_max_chance:
            wanted.append(g)
    if not wanted:
        return
    runs: dict[str, _Runs] = {}
    for row in view.run_profile(since):
        r = runs.setdefault(row["task_type"], _Runs())
        r.runs[row["status"]] += int(row["runs"])
        r.seconds[row["status"]] += float(row["duration"] or 0)
        r.executors[row["executor"] or "(none)"] += int(row["runs"])
        if row["status"] == "completed":
            r.ok_models[row["model"] or "(none)"] += int(row["runs"])
    files = {(r["task_type"], r["state"]): r for r in view.files_profile(since)}
    for g in sorted(wanted, key=lambda g: (g.task_type, -g.failures, g.signature)):
        r = runs.get(g.task_type, _Runs())
        if _one_executor(g, r):
            continue
        yield _finding(options, g, r, files)


def _one_executor(g: _Group, r: _Runs) -> bool:
    """True when the failures sit on one executor while the type runs on several: that is
    the executor failing (stuck-phases' error-rate), not the tasks' description."""
    name, n = g.executors.most_common(1)[0]
    runs = sum(r.executors.values())
    return len(r.executors) > 1 and n >= 0.8 * g.failures and r.executors[name] < 0.8 * runs


def _finding(
    options: Settings, g: _Group, r: _Runs, files: dict[tuple[str, str], dict[str, Any]]
) -> Finding:
    kind = g.task_type or "untyped"
    total, failed, ok = sum(r.runs.values()), r.runs["failed"], r.runs["completed"]
    share = g.failures / g.type_failures if g.type_failures else 1.0
    expected = g.expected_share * g.type_failures
    rate = failed / total if total else 0.0
    tasks = sorted(g.tasks, key=lambda t: (-g.tasks[t], t))
    fail_secs = g.duration / g.failures if g.failures else 0.0
    ok_secs = r.seconds["completed"] / ok if ok else None
    ok_files = files.get((g.task_type, "completed"), {}).get("mean_files")
    bad_files = files.get((g.task_type, "failed"), {}).get("mean_files")
    differs = []
    if ok:
        top_ok, top_ok_n = r.ok_models.most_common(1)[0]
        top_bad, top_bad_n = g.models.most_common(1)[0]
        differs.append(
            f"model: these failures ran {top_bad} ({top_bad_n} of {g.failures}); "
            f"completed {kind} runs mostly {top_ok} ({top_ok_n} of {ok})"
        )
        differs.append(
            f"duration: these failures took {fail_secs:.0f}s on average; "
            f"completed runs {ok_secs or 0:.0f}s"
        )
    if ok_files is not None:
        differs.append(
            f"files: completed {kind} tasks changed {float(ok_files):.1f} files on average"
            + (f", failed ones {float(bad_files):.1f}" if bad_files is not None else "")
        )
    shown = ", ".join(tasks[:_MAX_LISTED]) + (
        f" and {len(tasks) - _MAX_LISTED} more" if len(tasks) > _MAX_LISTED else ""
    )
    window = f"{options.failure_window.days}d"
    return Finding(
        kind="failure-signature",
        subject=f"task_type:{kind}",
        key=hashlib.sha256(g.signature.encode()).hexdigest()[:12],
        summary=(
            f"{g.failures} failures of {len(tasks)} {kind} tasks in {window} share one error "
            f"signature {g.signature!r}: {share:.0%} of the type's {g.type_failures} failures "
            f"with an error, where the other types' mix predicts {expected:.1f} (chance "
            f"{g.chance:.2g}, {g.family_chance:.2g} across the {g.judged} type/signature "
            f"pair(s) judged; the type fails {rate:.0%} of its {total} runs); tasks {shown}"
        ),
        evidence={
            "task_type": g.task_type,
            "signature": g.signature,
            "example_error": g.example[:500],
            "failures": g.failures,
            "tasks": len(tasks),
            "failing_tasks": tasks[:_MAX_LISTED],
            "type_runs": total,
            "type_failures": failed,
            "type_failure_rate": round(rate, 3),
            "signature_share_of_failures": round(share, 3),
            "expected_failures": round(expected, 2),
            "chance": float(f"{g.chance:.3g}"),
            "family_chance": float(f"{g.family_chance:.3g}"),
            "pairs_judged": g.judged,
            "models": dict(g.models.most_common(5)),
            "executors": dict(g.executors.most_common(5)),
            "mean_failed_seconds": round(fail_secs, 1),
            "completed_runs": ok,
            "completed_models": dict(r.ok_models.most_common(5)),
            "mean_completed_seconds": round(ok_secs, 1) if ok_secs is not None else None,
            "mean_completed_files": round(float(ok_files), 2) if ok_files is not None else None,
            "threshold": options.failure_min_count,
        },
        title=f"Clarify how {kind} tasks avoid {g.signature[:60]!r}",
        why=(
            "When several tasks of one type fail the same way, the cause is usually in what "
            "they are told or given, not in each task: a retry repeats it, and one clearer "
            "description fixes them all."
        ),
        action=(
            f"Rewrite the description (or the prompt template) of {kind} tasks so it prevents "
            f"the error {g.signature!r}, seen in {shown}. "
            + (
                "What the completed ones did differently: " + "; ".join(differs) + "."
                if differs
                else f"No {kind} task completed in {window}, so nothing to compare with."
            )
            + " Then retry the failed tasks with the new description."
        ),
        related=tasks[:_MAX_LISTED],
    )
