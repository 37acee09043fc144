"""The five checks of spec-drift, one function per kind, over one spec at a time."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from rules.contract import Finding
from rules.specs import (
    Section,
    baseline_marker,
    covered,
    find_section,
    glob_match,
    heading_key,
    listed_files,
    norm_path,
    parse_sections,
    spec_ref,
    under_specs,
)
from store import BacklogView, json_list
from store.timeutil import fmt_ts, parse_ts
from store.workspace import SpecFile, Workspace


class Settings(Protocol):
    """The spec-drift options the checks read (the rule's ``Settings`` has them)."""

    @property
    def kinds(self) -> Sequence[str]: ...

    @property
    def required_sections(self) -> Sequence[str]: ...

    @property
    def requirements_section(self) -> str: ...

    @property
    def acceptance_section(self) -> str: ...

    @property
    def files_section(self) -> str: ...

    @property
    def min_covered_fraction(self) -> float: ...

    @property
    def impl_task_types(self) -> Sequence[str]: ...

    @property
    def require_impl_done(self) -> bool: ...

    @property
    def ignore_changes(self) -> Sequence[str]: ...

    @property
    def grace(self) -> timedelta: ...


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")
_WORD = re.compile(r"[a-z][a-z0-9_]{3,}")
_STOP = frozenset(
    [
        "with",
        "from",
        "that",
        "this",
        "when",
        "into",
        "each",
        "have",
        "will",
        "should",
        "must",
        "than",
        "then",
    ]
)
_WHY = (
    "Agents implement what the spec says; a spec that is incomplete or no longer matches "
    "the code sends the next task the wrong way."
)


@dataclass
class SpecTasks:
    """The completed tasks naming one spec, merged over the spellings of its path."""

    refs: list[str] = field(default_factory=list)
    completed_impl: int = 0
    last_finished: str = ""
    last_task: str = ""


def tasks_by_spec(rows: list[dict[str, Any]], prefixes: list[str]) -> dict[str, SpecTasks]:
    out: dict[str, SpecTasks] = {}
    for row in rows:
        key = spec_ref(row["spec"], prefixes)
        if key is None:
            continue
        entry = out.setdefault(key, SpecTasks())
        entry.refs.append(row["spec"])
        entry.completed_impl += int(row["completed_impl"] or 0)
        if row["last_finished"] > entry.last_finished:
            entry.last_finished, entry.last_task = row["last_finished"], row["last_task"]
    return out


def parse_baseline(text: str) -> datetime | str | None:
    """A baseline as an instant, a commit sha to resolve, or None if it is neither."""
    try:
        at = parse_ts(text)
    except ValueError:
        return text if _SHA.match(text) else None
    # A bare date accepts what happened on that day, too.
    return at + timedelta(days=1, seconds=-1) if _DATE.match(text) else at


@dataclass
class SpecContext:
    """What every check needs to know about one spec, computed once."""

    spec: SpecFile
    options: Settings
    view: BacklogView
    ws: Workspace
    sections: list[Section]
    listed: list[str]
    tasks: SpecTasks | None
    baseline: datetime | None
    baseline_note: str | None
    spec_changed: datetime | None

    @classmethod
    def build(
        cls,
        spec: SpecFile,
        tasks: SpecTasks | None,
        configured: str | None,
        prefixes: list[str],
        options: Settings,
        view: BacklogView,
    ) -> SpecContext:
        ws: Workspace = view.workspace
        sections = parse_sections(spec.text)
        listed = listed_files(sections, options.files_section, prefixes)
        baseline, note = None, None
        for mark in (configured, baseline_marker(spec.text)):
            parsed = parse_baseline(mark) if mark else None
            at = ws.commit_time(parsed) if isinstance(parsed, str) else parsed
            if mark and at is None:
                note = f"baseline {mark!r} is not a date or a commit known to the repository"
            elif at is not None and (baseline is None or at > baseline):
                baseline = at
        # Only a baseline or finished work makes the spec's own change time matter.
        needed = baseline is not None or tasks is not None
        spec_changed = ws.last_change(spec.path, view.now, in_specs=True) if needed else None
        return cls(spec, options, view, ws, sections, listed, tasks, baseline, note, spec_changed)

    @property
    def accepted(self) -> bool:
        """True when a baseline covers the spec's text: it has not changed since."""
        return self.baseline is not None and (
            self.spec_changed is None or self.spec_changed <= self.baseline
        )

    def finding(self, kind: str, summary: str, evidence: dict[str, Any], **kw: Any) -> Finding:
        if self.baseline_note:
            evidence["baseline_error"] = self.baseline_note
        return Finding(
            kind=kind,
            subject=self.spec.path,
            summary=summary,
            evidence={"spec": self.spec.path, **evidence},
            why=_WHY,
            task_type="spec",
            **kw,
        )


def structure(ctx: SpecContext) -> Iterator[Finding]:
    """``template`` and ``untestable``: what the spec's own text lacks."""
    opts, path = ctx.options, ctx.spec.path
    if ctx.accepted:
        return
    gaps = {n: find_section(ctx.sections, n) for n in opts.required_sections}
    missing = [n.split("|")[0] for n, s in gaps.items() if s is None]
    empty = [n.split("|")[0] for n, s in gaps.items() if s is not None and s.empty]
    if "template" in opts.kinds and (missing or empty):
        parts = [
            f"{label} {', '.join(names)}"
            for label, names in (("missing", missing), ("empty", empty))
            if names
        ]
        what = "; ".join(parts)
        yield ctx.finding(
            "template",
            f"Spec {path} does not follow the template: {what}.",
            {"missing_sections": missing, "empty_sections": empty},
            title=f"Complete the template sections of spec {path}",
            action=f"Add the sections the template requires to {path}: {what}.",
        )
    if "untestable" not in opts.kinds:
        return
    req = find_section(ctx.sections, opts.requirements_section)
    items = req.items() if req else []
    acc = find_section(ctx.sections, opts.acceptance_section)
    aliases = {heading_key(a) for a in opts.acceptance_section.split("|")}
    by_template = "template" in opts.kinds and any(
        aliases & {heading_key(a) for a in n.split("|")} for n in opts.required_sections
    )
    if items and (acc is None or acc.empty):
        if not by_template:
            yield ctx.finding(
                "untestable",
                f"Spec {path} states {len(items)} requirements but no acceptance tests.",
                {"requirements": len(items), "uncovered": items[:10]},
                title=f"Add acceptance tests to spec {path}",
                action=f"Write acceptance tests or criteria in {path} that show each "
                "requirement is met.",
            )
        return
    if not items or acc is None or opts.min_covered_fraction <= 0:
        return
    known = set(_WORD.findall("\n".join(acc.lines).lower())) - _STOP
    uncovered = [i for i in items if not (_terms(i) & known)]
    covered = 1 - len(uncovered) / len(items)
    if covered < opts.min_covered_fraction:
        yield ctx.finding(
            "untestable",
            f"Only {len(items) - len(uncovered)} of {len(items)} requirements in spec {path} "
            f"are mentioned by an acceptance test (at least {opts.min_covered_fraction:.0%} "
            "wanted).",
            {
                "requirements": len(items),
                "covered_fraction": round(covered, 2),
                "uncovered": uncovered[:10],
            },
            title=f"Add acceptance tests to spec {path}",
            action=f"Give each requirement of {path} an acceptance test or criterion.",
        )


def missing_files(ctx: SpecContext) -> Iterator[Finding]:
    """``missing-file``: listed files absent from the repository after implementation."""
    opts, t = ctx.options, ctx.tasks
    done = t is not None and t.completed_impl > 0
    if "missing-file" not in opts.kinds or ctx.accepted or (opts.require_impl_done and not done):
        return
    for path in ctx.listed:
        if "*" in path or ctx.ws.file_exists(path):
            continue
        yield ctx.finding(
            "missing-file",
            f"Spec {ctx.spec.path} lists {path}, which does not exist in the repository"
            + (f" although its implementation ({t.last_task}) has completed." if t else "."),
            {"file": path, "last_task": t.last_task if t else None},
            key=path,
            title=f"Reconcile spec {ctx.spec.path} with missing file {path}",
            action=f"Create {path} as the spec says, or change the spec's file list "
            "if the work went elsewhere.",
            related=[t.last_task] if t else [],
        )


def unrequested_changes(ctx: SpecContext) -> Iterator[Finding]:
    """``unrequested-change``: impl tasks that changed files the spec does not list."""
    opts, t = ctx.options, ctx.tasks
    if "unrequested-change" not in opts.kinds or not ctx.listed or t is None:
        return
    if t.completed_impl == 0:
        return
    after = fmt_ts(ctx.baseline) if ctx.baseline else None
    extra: dict[str, list[str]] = {}
    prefixes = ctx.ws.spec_ref_prefixes()
    for task in ctx.view.completed_spec_tasks(t.refs, opts.impl_task_types, after):
        for raw in json_list(task["files_changed"]):
            path = norm_path(str(raw))
            if path is None or under_specs(path, prefixes) or covered(path, ctx.listed):
                continue
            if any(glob_match(path, g) for g in opts.ignore_changes):
                continue
            ids = extra.setdefault(path, [])
            ids.append(task["id"]) if task["id"] not in ids else None
    if not extra:
        return
    tasks = sorted({i for ids in extra.values() for i in ids})
    shown = ", ".join(sorted(extra)[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
    yield ctx.finding(
        "unrequested-change",
        f"{_plural(len(tasks), 'Task')} {', '.join(tasks)} of spec {ctx.spec.path} changed "
        f"{len(extra)} {_plural(len(extra), 'file')} the spec does not list: {shown}.",
        {"files": dict(sorted(extra.items())), "tasks": tasks},
        title=f"Review changes outside spec {ctx.spec.path}",
        action="Add these files to the spec's file list if the change belongs to it; "
        "otherwise revert them or give them a spec of their own.",
        related=tasks,
    )


def stale_spec(ctx: SpecContext) -> Iterator[Finding]:
    """``stale-spec``: listed files that changed after the spec's work was done."""
    opts, t = ctx.options, ctx.tasks
    if "stale-spec" not in opts.kinds or t is None or not t.last_finished:
        return
    marks = [parse_ts(t.last_finished) + opts.grace, ctx.spec_changed, ctx.baseline]
    since = max(m for m in marks if m is not None)
    changed = {}
    for path in ctx.listed:
        at = None if "*" in path else ctx.ws.last_change(path, ctx.view.now)
        if at is not None and at > since:
            changed[path] = fmt_ts(at)
    if not changed:
        return
    yield ctx.finding(
        "stale-spec",
        f"{len(changed)} {_plural(len(changed), 'file')} of spec {ctx.spec.path} changed after "
        f"its last task "
        f"({t.last_task}) completed on {t.last_finished[:10]}, and the spec was not updated: "
        f"{', '.join(sorted(changed))}.",
        {
            "files": changed,
            "last_task": t.last_task,
            "last_finished": t.last_finished,
            "spec_changed": fmt_ts(ctx.spec_changed) if ctx.spec_changed else None,
        },
        title=f"Update spec {ctx.spec.path} to match its code",
        action=f"Read what changed in {', '.join(sorted(changed))} and bring {ctx.spec.path} "
        "up to date, or set a baseline for it if the spec still holds.",
        related=[t.last_task],
    )


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


def _terms(item: str) -> set[str]:
    lead = re.search(r"\*\*(.+?)\*\*", item)
    return set(_WORD.findall((lead.group(1) if lead else item).lower())) - _STOP
