"""priorities: dependency cycles, dead and missing dependencies, and work ranked against its path.

``depends_on`` says what must finish before a task can start. When that graph
has a cycle, none of its members can ever start; when a task waits on one that
failed or was cancelled, or on an id that does not exist, it waits for ever
while the queue looks merely busy; and when urgent work waits on a low-priority
task, the scheduler's ranking works against the backlog's own intent. This
rule reads the open tasks (pending and running) that declare dependencies and
the tasks they name, nothing more.

Kinds
-----
``cycle``
    Open tasks that depend on each other in a ring (a task depending on itself
    included). One finding per cycle, about its smallest id, naming the cycle
    in order.
``blocked``
    An open task waiting on a task that failed or was cancelled at least
    ``blocked_grace`` ago (a pipeline that retries gets that long to do so).
``missing-dependency``
    An open task depending on an id that does not exist in the backlog.
``reorder``
    A low-priority open task on the critical path of important work: an open
    task of an ``important_priorities`` priority (or, with
    ``goal_work_is_important``, linked to a goal) depends on it directly or
    through other open tasks, up to ``max_depth`` steps. One finding per
    low-priority task; the action proposes raising it to the highest priority
    that waits on it. (A high-priority task blocked by low-priority work is the
    same edge seen from the other end, so it is this finding too.)

Approving a ``reorder`` proposal changes the task's priority in the backlog to
the proposed one (recorded in the audit log) instead of filing a task; a store
that cannot change a task (the HTTP store) files a task to do it.

Options (defaults shown)::

    [rules.priorities]
    kinds = ["cycle", "blocked", "missing-dependency", "reorder"]
    blocked_grace = "1h"          # a failed dependency this recent may still be retried
    important_priorities = ["high", "critical"]
    low_priorities = ["low"]
    goal_work_is_important = true  # open tasks with a goal_id count as important work
    max_depth = 10                # dependency steps followed from important work
    include_own_tasks = false     # also review tasks the reviewer filed (source = "reviewer")

Fires: pending ``a`` depends on ``b`` and ``b`` on ``a`` (``cycle a -> b ->
a``); pending ``c`` depends on ``x``, which failed a day ago (``blocked``);
pending ``d`` depends on ``nope``, which no task has as its id
(``missing-dependency``); pending ``high`` task ``h`` depends on pending
``low`` task ``l`` (``reorder`` of ``l``).

Silent: ``c`` when ``x`` completed, or failed ten minutes ago; ``h`` when
``l`` is ``normal``; a chain ``a -> b -> c`` with no way back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Literal, get_args

from pydantic import Field

from rules.contract import Finding, RuleOptions, Severity
from store import BacklogView, json_list
from store.timeutil import Duration, fmt_duration, parse_ts

ID = "priorities"
DEFAULTS: dict[str, object] = {"severity": "warning", "approval": "manual"}
# The option `reviewer report` suggests changing when this rule is noisy, and which way is quieter.
TUNING = {"option": "blocked_grace", "quieter": "higher"}
# Approving a reorder changes the task's priority to its evidence's proposed_priority
# instead of filing a task (the engine applies it; see reviewer.engine).
APPLY = {"reorder": "set_priority"}

Kind = Literal["cycle", "blocked", "missing-dependency", "reorder"]
Priority = Literal["low", "normal", "high", "critical"]
_RANK = {"low": 0, "normal": 1, "high": 2, "critical": 3}
_MAX_LISTED = 20


def _important() -> list[Priority]:
    return ["high", "critical"]


def _low() -> list[Priority]:
    return ["low"]


class Options(RuleOptions):
    kinds: list[Kind] = Field(default_factory=lambda: list(get_args(Kind)))
    blocked_grace: Duration = timedelta(hours=1)
    important_priorities: list[Priority] = Field(default_factory=_important)
    low_priorities: list[Priority] = Field(default_factory=_low)
    goal_work_is_important: bool = True
    max_depth: int = Field(default=10, ge=1)
    include_own_tasks: bool = False


def check(options: Options, view: BacklogView) -> Iterator[Finding]:
    dependents = [
        t for t in view.open_dependents() if options.include_own_tasks or t["source"] != "reviewer"
    ]
    if not dependents:
        return
    edges = {t["id"]: [str(d) for d in json_list(t["depends_on"])] for t in dependents}
    named = {d for deps in edges.values() for d in deps}
    briefs = view.task_briefs(sorted(named | set(edges)))
    if "cycle" in options.kinds:
        yield from _cycles(edges, briefs)
    for task in dependents:
        if "missing-dependency" in options.kinds:
            yield from _missing(task, edges[task["id"]], briefs)
        if "blocked" in options.kinds:
            yield from _blocked(options, view, task, edges[task["id"]], briefs)
    if "reorder" in options.kinds:
        yield from _reorder(options, dependents, edges, briefs)


def _cycles(edges: dict[str, list[str]], briefs: dict[str, dict[str, Any]]) -> Iterator[Finding]:
    open_ids = {i for i, b in briefs.items() if b["state"] in ("pending", "running")}
    graph = {a: sorted(d for d in ds if d in open_ids and d in edges) for a, ds in edges.items()}
    for ring in _rings(graph):
        start = ring.index(min(ring))
        ring = ring[start:] + ring[:start]
        path = " -> ".join([*ring, ring[0]])
        yield Finding(
            kind="cycle",
            subject=ring[0],
            key=",".join(sorted(ring)),
            severity=Severity.error,
            summary=(
                f"{len(ring)} open {_plural(len(ring), 'task')} depend on each other in a cycle "
                f"({path}): none of them can start (a healthy dependency graph has no cycle)"
            ),
            evidence={
                "cycle": ring,
                "size": len(ring),
                "members": [
                    {"id": i, "title": briefs[i]["title"], "state": briefs[i]["state"]}
                    for i in ring[:_MAX_LISTED]
                ],
                "expected_cycles": 0,
            },
            title=f"Break the dependency cycle {path}",
            why=(
                "Tasks in a dependency cycle each wait for another member to finish first, "
                "so none of them will ever start, however long the queue runs."
            ),
            action=(
                f"Decide which of {', '.join(ring)} really must come first and remove the "
                "dependency that points back at it from depends_on."
            ),
            related=ring,
        )


def _rings(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with a ring in them, each as one cycle path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, []))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] != index[node]:
                continue
            members = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                members.append(top)
                if top == node:
                    break
            if len(members) > 1 or node in graph.get(node, []):
                found.append(_ring_path(graph, set(members)))
    return found


def _ring_path(graph: dict[str, list[str]], members: set[str]) -> list[str]:
    """One simple cycle through the component's smallest member (a walk back to it)."""
    start = min(members)
    parents: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt = []
        for node in frontier:
            for child in graph.get(node, []):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return list(reversed(path))
                if child in members and child not in seen:
                    seen.add(child)
                    parents[child] = node
                    nxt.append(child)
        frontier = nxt
    return sorted(members)


def _missing(task: dict[str, Any], deps: list[str], briefs: dict[str, Any]) -> Iterator[Finding]:
    missing = sorted({d for d in deps if d not in briefs})
    if not missing:
        return
    yield Finding(
        kind="missing-dependency",
        subject=task["id"],
        summary=(
            f"{task['state']} task {task['id']} depends on "
            f"{_plural(len(missing), 'an id', 'ids')} no task has: {', '.join(missing)} "
            f"({len(missing)} of its {len(set(deps))} dependencies)"
        ),
        evidence={
            "title": task["title"],
            "missing": missing,
            "depends_on": deps,
            "dependencies": len(set(deps)),
        },
        title=f"Fix the dependencies of task {task['id']}: {task['title']}",
        why=(
            "A dependency on an id that does not exist can never be met: the task waits for "
            "ever, or a scheduler that ignores unknown ids runs it before work it needs."
        ),
        action=(
            f"Correct the ids {', '.join(missing)} in the depends_on of {task['id']} "
            "(a typo, or a task renamed or deleted), or remove them."
        ),
        related=[task["id"]],
    )


def _blocked(
    options: Options,
    view: BacklogView,
    task: dict[str, Any],
    deps: list[str],
    briefs: dict[str, Any],
) -> Iterator[Finding]:
    cutoff = view.now - options.blocked_grace
    dead = [
        briefs[d]
        for d in sorted(set(deps))
        if d in briefs
        and briefs[d]["state"] in ("failed", "cancelled")
        and parse_ts(briefs[d]["ended_at"]) <= cutoff
    ]
    if not dead:
        return
    first = min(dead, key=lambda b: b["ended_at"])
    waited = view.now - parse_ts(first["ended_at"])
    what = "; ".join(f"{b['id']} {b['state']} at {b['ended_at']}" for b in dead)
    yield Finding(
        kind="blocked",
        subject=task["id"],
        summary=(
            f"{task['state']} task {task['id']} waits on {_plural(len(dead), 'a task', 'tasks')} "
            f"that will not finish ({what}); blocked for {fmt_duration(waited)} "
            f"(grace {fmt_duration(options.blocked_grace)})"
        ),
        evidence={
            "title": task["title"],
            "blocked_by": [
                {k: b[k] for k in ("id", "title", "state", "ended_at", "error")} for b in dead
            ],
            "blocked_days": round(waited.total_seconds() / 86400, 2),
            "grace_hours": round(options.blocked_grace.total_seconds() / 3600, 2),
        },
        title=f"Unblock task {task['id']}: {task['title']}",
        why=(
            "A task waiting on a failed or cancelled task never becomes ready; it sits in the "
            "queue while its dependency is retried by nobody."
        ),
        action=(
            f"Retry or replace {', '.join(b['id'] for b in dead)}, or drop the dependency "
            f"from {task['id']} if it is no longer needed, or cancel {task['id']} too."
        ),
        related=[task["id"], *(b["id"] for b in dead)],
    )


def _reorder(
    options: Options,
    dependents: list[dict[str, Any]],
    edges: dict[str, list[str]],
    briefs: dict[str, Any],
) -> Iterator[Finding]:
    important = set(options.important_priorities)
    low = set(options.low_priorities)

    def is_open(i: str) -> bool:
        return i in briefs and briefs[i]["state"] in ("pending", "running")

    def wants(t: dict[str, Any]) -> str | None:
        """The priority a task asks of its path, or None when it is not important work."""
        if t["priority"] in important:
            return str(t["priority"])
        if options.goal_work_is_important and t["goal_id"] and t["priority"] not in low:
            return "normal" if _RANK[t["priority"]] <= 1 else str(t["priority"])
        return None

    # Which important tasks wait on each open low-priority task, and how far away.
    waiting: dict[str, dict[str, int]] = {}
    for root in dependents:
        asks = wants(root)
        if asks is None:
            continue
        depth = {root["id"]: 0}
        frontier = [root["id"]]
        while frontier:
            nxt = []
            for node in frontier:
                if depth[node] >= options.max_depth:
                    continue
                for dep in edges.get(node, []):
                    if dep in depth or not is_open(dep):
                        continue
                    depth[dep] = depth[node] + 1
                    nxt.append(dep)
                    prio = briefs[dep]["priority"]
                    if prio in low and _RANK[prio] < _RANK[asks]:
                        waiting.setdefault(dep, {})[root["id"]] = depth[dep]
            frontier = nxt
    for task_id in sorted(waiting):
        brief = briefs[task_id]
        roots = sorted(waiting[task_id], key=lambda r: (-_RANK[briefs[r]["priority"]], r))
        top = max((wants(briefs[r]) or "normal" for r in roots), key=lambda p: _RANK[p])
        shown = ", ".join(f"{r} ({briefs[r]['priority']})" for r in roots[:_MAX_LISTED])
        yield Finding(
            kind="reorder",
            subject=task_id,
            summary=(
                f"{brief['priority']} task {task_id} is on the critical path of "
                f"{len(roots)} more important open {_plural(len(roots), 'task')}: {shown}; "
                f"its priority ({brief['priority']}) is below the {top} they need"
            ),
            evidence={
                "title": brief["title"],
                "priority": brief["priority"],
                "proposed_priority": top,
                "waiting": [
                    {
                        "id": r,
                        "priority": briefs[r]["priority"],
                        "goal_id": briefs[r]["goal_id"],
                        "steps": waiting[task_id][r],
                    }
                    for r in roots[:_MAX_LISTED]
                ],
                "waiting_count": len(roots),
            },
            title=f"Raise the priority of task {task_id} to {top}: {brief['title']}",
            why=(
                "Important work cannot start before the tasks it depends on finish; a "
                "low-priority task on its path is picked last, so the important work waits "
                "longest exactly where it matters most."
            ),
            action=(
                f"Set the priority of {task_id} to {top} (the highest priority waiting on it), "
                f"or remove the dependency of {', '.join(roots[:5])} on it if it is not needed."
            ),
            related=[task_id, *roots[:_MAX_LISTED]],
        )


def _plural(count: int, one: str, many: str | None = None) -> str:
    return one if count == 1 else (many or one + "s")
