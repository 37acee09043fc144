"""backlog-hygiene: one cause failing many tasks, epics, items without criteria, leftovers.

Agents do what a backlog item says. When many items of one type fail with the
same error, the items (or the template they are written from) are missing
something, and retrying each one repeats the failure; when an item is an epic,
an agent times out or does a part of it; when an item says nothing about how
to tell it is done, nobody can; and when a goal is finished, its low-priority
leftovers only clutter the queue. This rule proposes the fix for each: a
clearer description, a split, acceptance criteria, or cancelling.

Kinds
-----
``failure-signature``
    Failed executions (``task_metrics``) within ``failure_window`` whose error
    texts reduce to one signature, at least ``failure_min_count`` failures of
    at least ``failure_min_tasks`` tasks of one task type, and more than the
    other types' failures make likely: the binomial chance of that many among
    the type's failures, at the signature's (add-one smoothed) share of the
    other types' failures, times the number of (type, signature) pairs judged
    (a Bonferroni correction: a busy pipeline judges dozens of pairs, and one
    of them at 1 in 2,000 is then no surprise), is at most
    ``failure_max_chance``. A signature every type fails with alike is
    background noise, not a description problem. The signature is the
    line that says what went wrong (the last line of a traceback, else the
    first) with timestamps, UUIDs, URLs, hex, paths, ids and numbers replaced
    by placeholders, as Sentry groups events. Subject ``task_type:NAME``, one
    finding per signature. Failures that sit on one executor (80% or more) while
    the type runs on several are that executor failing, which stuck-phases
    reports, and are left to it. The proposal quotes the signature and the failing
    tasks and says what the completed runs of the type did differently:
    model, duration, files changed.
``oversized``
    A pending item too large to finish in one run: its description has more
    than ``max_words`` words, lists more than ``max_requirements`` items, or
    names more than ``max_files`` paths; or it (pending or running) timed
    out ``max_timeouts`` times or more (a failed execution whose error
    contains one of ``timeout_markers``). The proposal names the parts to
    split it into: its own headings, else groups of its list items.
``no-acceptance``
    A pending item of ``acceptance_task_types``, older than
    ``acceptance_min_age``, with no ``spec`` (spec-drift judges a spec's
    acceptance tests) and none of ``acceptance_markers`` in its description.
    The evidence says how many items of its type do carry criteria.
``low-value``
    A pending item of ``low_priorities``, untouched for ``low_value_idle``,
    whose goal is done or cancelled: the backlog task whose id is its
    ``goal_id`` is completed or cancelled. A goal whose only open work is
    low-priority is not done (that work is what is left of it), so it is not
    judged.

The reviewer's own tasks (``source = "reviewer"``) are skipped unless
``include_own_tasks``.

Options (defaults shown)::

    [rules.backlog-hygiene]
    kinds = ["failure-signature", "oversized", "no-acceptance", "low-value"]
    failure_window = "14d"        # failed executions looked at
    failure_min_count = 3         # failures of one signature in one task type
    failure_min_tasks = 2         # ... of this many tasks (one task retrying is a retry loop)
    failure_max_error = 2000      # characters of each error text read
    failure_max_chance = 0.001    # ... and that many is this unlikely from the other types' mix,
                                  #     across every (type, signature) pair judged
    max_words = 1500              # description words from which an item is oversized
    max_requirements = 15         # list items in the description
    max_files = 12                # paths named in the description
    max_timeouts = 2              # timed-out executions of one item
    timeout_markers = ["timeout", "timed out", "deadline exceeded"]
    acceptance_task_types = ["impl", "test"]
    acceptance_markers = ["acceptance", "definition of done", "done when", "- [ ]", "- [x]"]
    acceptance_min_age = "1h"     # a brand-new item may still be being written
    low_priorities = ["low"]
    low_value_idle = "7d"         # untouched this long after its goal ended
    include_own_tasks = false

Fires: impl tasks i1, i2 and i3 failed in the last week with "ModuleNotFoundError:
No module named 'x1'", "... 'x2'", "... 'x3'" (``failure-signature`` of
``task_type:impl``, signature "ModuleNotFoundError: No module named '<id>'");
a pending item whose description is 3,000 words (``oversized``); a pending
impl item "Add caching" with the description "Make it faster."
(``no-acceptance``); a pending low item of goal ``g`` untouched for ten days
while task ``g`` completed a week ago (``low-value``).

Silent: two such failures, or three of one task; a 200-word item with five
requirements; "Add caching" with "Done when: p95 below 100 ms"; the low item
while another normal item of goal ``g`` is still pending.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Literal, get_args

from pydantic import Field

from rules.backlog_hygiene.failures import failure_signatures
from rules.contract import Finding, RuleOptions
from rules.specs import Section, parse_sections
from store import BacklogView
from store.timeutil import Duration, fmt_duration, parse_ts

ID = "backlog-hygiene"
DEFAULTS: dict[str, object] = {"severity": "info", "approval": "manual"}
# The option `reviewer report` suggests changing when this rule is noisy, and which way is quieter.
TUNING = {"option": "failure_min_count", "quieter": "higher"}
# Kinds an operational cause can produce (grouped into incidents by the engine).
SYMPTOM_KINDS = ("failure-signature",)

Kind = Literal["failure-signature", "oversized", "no-acceptance", "low-value"]
Priority = Literal["low", "normal", "high", "critical"]
_WORD = re.compile(r"\S+")


def _low() -> list[Priority]:
    return ["low"]


class Options(RuleOptions):
    kinds: list[Kind] = Field(default_factory=lambda: list(get_args(Kind)))
    failure_window: Duration = timedelta(days=14)
    failure_min_count: int = Field(default=3, ge=2)
    failure_min_tasks: int = Field(default=2, ge=1)
    failure_max_error: int = Field(default=2000, ge=50)
    failure_max_chance: float = Field(default=0.001, gt=0.0, lt=1.0)
    max_words: int = Field(default=1500, ge=1)
    max_requirements: int = Field(default=15, ge=1)
    max_files: int = Field(default=12, ge=1)
    max_timeouts: int = Field(default=2, ge=1)
    timeout_markers: list[str] = Field(
        default_factory=lambda: ["timeout", "timed out", "deadline exceeded"]
    )
    acceptance_task_types: list[str] = Field(default_factory=lambda: ["impl", "test"])
    acceptance_markers: list[str] = Field(
        default_factory=lambda: ["acceptance", "definition of done", "done when", "- [ ]", "- [x]"],
        min_length=1,
    )
    acceptance_min_age: Duration = timedelta(hours=1)
    low_priorities: list[Priority] = Field(default_factory=_low, min_length=1)
    low_value_idle: Duration = timedelta(days=7)
    include_own_tasks: bool = False


def check(options: Options, view: BacklogView) -> Iterator[Finding]:
    if "failure-signature" in options.kinds:
        yield from failure_signatures(options, view)
    if "oversized" in options.kinds:
        yield from _oversized(options, view)
    if "no-acceptance" in options.kinds:
        yield from _no_acceptance(options, view)
    if "low-value" in options.kinds:
        yield from _low_value(options, view)


def _own(options: Options, task: dict[str, Any]) -> bool:
    return not options.include_own_tasks and task["source"] == "reviewer"


def _oversized(options: Options, view: BacklogView) -> Iterator[Finding]:
    # A description cannot hold N words, items or paths in fewer than ~2N characters.
    floor = 2 * min(options.max_words, options.max_requirements, options.max_files)
    candidates = {t["id"]: t for t in view.long_pending_tasks(floor)}
    timeouts: dict[str, int] = {}
    for t in view.timed_out_tasks(options.timeout_markers, options.max_timeouts):
        timeouts[t["id"]] = int(t["timeouts"])
        candidates.setdefault(t["id"], t)
    sizes = view.description_sizes() if candidates else {}
    for task_id in sorted(candidates, key=lambda i: (candidates[i]["created_at"], i)):
        task = candidates[task_id]
        if _own(options, task):
            continue
        text = task["description"] or ""
        body = Section(title="", level=0, lines=text.splitlines())
        words, items, paths = len(_WORD.findall(text)), body.items(), body.paths()
        timed_out = timeouts.get(task_id, 0)
        over = {
            name: (value, limit)
            for name, value, limit, exceeded in (
                ("words", words, options.max_words, words > options.max_words),
                (
                    "requirements",
                    len(items),
                    options.max_requirements,
                    len(items) > options.max_requirements,
                ),
                ("files", len(paths), options.max_files, len(paths) > options.max_files),
                ("timeouts", timed_out, options.max_timeouts, timed_out >= options.max_timeouts),
            )
            if exceeded
        }
        if not over:
            continue
        usual = sizes.get(task["task_type"] or "")
        typical = (
            f"; completed {task['task_type'] or 'untyped'} tasks average "
            f"{float(usual['mean_chars']):.0f} characters"
            if usual and usual["tasks"]
            else ""
        )
        parts = _parts(text, items, options.max_requirements)
        said = ", ".join(f"{v} {n} (limit {lim})" for n, (v, lim) in over.items())
        yield Finding(
            kind="oversized",
            subject=task_id,
            summary=(
                f"Task {task_id} looks too large to finish in one run: {said}; its description "
                f"is {len(text)} characters{typical}"
            ),
            evidence={
                "title": task["title"],
                "task_type": task["task_type"],
                "words": words,
                "requirements": len(items),
                "files": len(paths),
                "timeouts": timed_out,
                "characters": len(text),
                "typical_characters": round(float(usual["mean_chars"]), 1)
                if usual and usual["tasks"]
                else None,
                "exceeded": sorted(over),
                "proposed_parts": parts,
            },
            title=f"Split task {task_id} into smaller tasks: {task['title']}",
            why=(
                "An item larger than one agent run can finish times out or comes back half "
                "done, and every retry pays for the whole of it again."
            ),
            action=(
                f"Split {task_id} into {len(parts)} tasks, each of which one run can finish and "
                "check on its own, linked by depends_on where order matters: "
                + "; ".join(f"({n}) {p}" for n, p in enumerate(parts, 1))
                + f". Then cancel {task_id} or keep it as the parent."
            ),
            related=[task_id],
        )


def _parts(text: str, items: list[str], max_items: int) -> list[str]:
    """Named parts for a split: the description's top headings, else groups of its items."""
    sections = parse_sections(text)
    if len(sections) >= 2:
        top = min(s.level for s in sections)
        named = [s.title for s in sections if s.level == top]
        if len(named) >= 2:
            return named[:12]
    if items:
        size = max(1, max_items // 2)
        groups = [items[i : i + size] for i in range(0, len(items), size)]
        return [
            f"{_lead(g[0])} (items {i * size + 1}-{i * size + len(g)})"
            for i, g in enumerate(groups)
        ][:12]
    words = _WORD.findall(text)
    if len(words) < 100:
        return ["a first part that one run can finish and check", "the rest, depending on it"]
    count = max(2, min(6, math.ceil(len(words) / 500)))
    step = math.ceil(len(words) / count)
    return [
        f"{_lead(' '.join(words[i : i + step]))} (words {i + 1}-{min(i + step, len(words))})"
        for i in range(0, len(words), step)
    ]


def _lead(text: str) -> str:
    words = _WORD.findall(re.sub(r"[*_`#]", "", text))
    return " ".join(words[:6]) + ("..." if len(words) > 6 else "")


def _no_acceptance(options: Options, view: BacklogView) -> Iterator[Finding]:
    before = view.ago(options.acceptance_min_age)
    found = [
        t
        for t in view.tasks_without(
            options.acceptance_markers, options.acceptance_task_types, before
        )
        if not _own(options, t)
    ]
    if not found:
        return
    share = view.marker_share(options.acceptance_markers, options.acceptance_task_types)
    for task in found:
        kind = task["task_type"]
        s = share.get(kind, {"tasks": 0, "with_markers": 0})
        n, w = int(s["tasks"] or 0), int(s["with_markers"] or 0)
        yield Finding(
            kind="no-acceptance",
            subject=task["id"],
            summary=(
                f"Pending {kind} task {task['id']} says nothing about how to tell it is done "
                f"(none of {', '.join(repr(m) for m in options.acceptance_markers)}); "
                f"{w} of {n} {kind} tasks ({w / n:.0%}) do"
            ),
            evidence={
                "title": task["title"],
                "task_type": kind,
                "priority": task["priority"],
                "created_at": task["created_at"],
                "type_tasks": n,
                "type_tasks_with_criteria": w,
            },
            title=f"Add acceptance criteria to task {task['id']}: {task['title']}",
            why=(
                "An item without acceptance criteria cannot be checked: the agent stops where "
                "it guesses, and review passes or fails it on taste."
            ),
            action=(
                f"Add an 'Acceptance criteria' list to {task['id']}: what must be true, and how "
                "to check it (a test, a command, an observable result), one line each."
            ),
            related=[task["id"]],
        )


def _low_value(options: Options, view: BacklogView) -> Iterator[Finding]:
    for task in view.low_value_tasks(options.low_priorities, view.ago(options.low_value_idle)):
        if _own(options, task):
            continue
        goal_state = task["goal_state"]
        if goal_state is not None:
            if goal_state not in ("completed", "cancelled"):
                continue
            how = f"goal task {task['goal_id']} is {goal_state}"
        else:
            # A goal whose only open work is this task is not done: the task is what is
            # left of it. Only a goal recorded as ended makes its leftovers low-value.
            continue
        idle = view.now - parse_ts(task["last_activity"])
        yield Finding(
            kind="low-value",
            subject=task["id"],
            summary=(
                f"{task['priority']} task {task['id']} has been untouched for "
                f"{fmt_duration(idle)} (limit {fmt_duration(options.low_value_idle)}) while "
                f"{how}"
            ),
            evidence={
                "title": task["title"],
                "priority": task["priority"],
                "goal_id": task["goal_id"],
                "goal_state": goal_state,
                "goal_done": int(task["done"]),
                "goal_cancelled": int(task["cancelled"]),
                "goal_open": int(task["open_other"]),
                "goal_ended_at": task["last_done"],
                "idle_days": round(idle.total_seconds() / 86400, 1),
                "limit_days": round(options.low_value_idle.total_seconds() / 86400, 1),
            },
            title=f"Cancel or re-home leftover task {task['id']}: {task['title']}",
            why=(
                "A low-priority item left behind by a finished goal is rarely wanted any more; "
                "it clutters the queue and skews its figures."
            ),
            action=(
                f"Cancel {task['id']}, or link it to a goal it still serves and give it the "
                "priority that goal needs."
            ),
            related=[task["id"]],
        )
