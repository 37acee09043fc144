"""spec-drift: specs that fall short of the template, or that the code has left behind.

A spec is the contract an implementation task works from. When it lacks a
section, states requirements nobody can test, or no longer matches the files
the code really has, the next agent works from a wrong picture. This rule reads
every spec under ``specs_dir`` (``*.md`` and ``*.txt``, recursively), the tasks
that name it in ``tasks.spec``, and the code under ``repo_dir``.

A task's ``spec`` matches a spec by its path relative to ``specs_dir``; a
leading ``./``, ``specs/``, the directory's own name or its path inside
``repo_dir`` is ignored on both sides (``./specs/004-x.md`` is ``004-x.md``).
Paths a spec lists are the backticked paths in its files section; paths under
the specs directory (e.g. the spec itself) are not code and are skipped.

Kinds
-----
``template``
    A required section is missing or empty. Headings match case-insensitively
    at any level, ignoring numbering and parentheses; ``"A|B"`` accepts either.
``untestable``
    The requirements section has list items but the acceptance section is
    missing or empty: nothing says how to tell the work is done. (The
    acceptance section is judged here, not by ``template``, unless you add it
    to ``required_sections``.) With ``min_covered_fraction`` set, also when
    too few requirement items share a significant word with the acceptance
    section; off by default, as a word match is a hint, not proof.
``missing-file``
    A listed file does not exist under ``repo_dir``, once an impl task of the
    spec has completed (before that, a file "to create" is rightly absent).
    One finding per file.
``unrequested-change``
    Completed impl tasks of the spec changed files it does not list (a listed
    directory or glob covers what is under it). Needs a files section: a spec
    without one says nothing about scope.
``stale-spec``
    A listed file changed (last git commit at or before now; the file's mtime
    outside git) more than ``grace`` after the spec's last task completed and
    after the spec itself last changed.

Specs are judged as of the review's instant: a spec whose file did not exist
yet is skipped, so a backtest does not flag specs before they were written.
It existed when git's first commit of it is at or before that instant; outside
git (or for a file git does not track) when its mtime is. The mtime is the
last change, so an mtime after the instant leaves it open whether the spec
existed: it is judged only when a task naming it had completed by then.
(Its text is still read as it is now.)

A baseline accepts drift already reviewed: a date or a commit sha, per spec in
config or in the spec as ``<!-- reviewer: baseline 2026-03-01 -->`` (or a
``reviewer_baseline:`` front-matter line); the later one wins. A bare date
means the end of that day (UTC), so a marker dated the day it is written
covers that edit. Changes and tasks at or before it are accepted; ``template``, ``untestable`` and
``missing-file`` stay quiet until the spec file changes after it.

Options (defaults shown)::

    [rules.spec-drift]
    patterns = ["*.md", "*.txt"]          # spec files under specs_dir, recursively
    exclude = ["README*", "index.md", "_*"]  # file names that are not specs
    kinds = ["template", "untestable", "missing-file", "unrequested-change", "stale-spec"]
    required_sections = ["Purpose", "Requirements", "Files to Create/Modify|Files"]
    requirements_section = "Requirements"
    acceptance_section = "Acceptance Tests|Acceptance Criteria"
    files_section = "Files to Create/Modify|Files to Create|Files to Modify|Files"
    min_covered_fraction = 0.0            # 0 = off; e.g. 0.5
    impl_task_types = ["impl"]            # tasks with no task_type are not impl
    require_impl_done = true
    ignore_changes = ["tests/**", "test/**", "*/tests/**", "docs/**", "*.lock", "*.md"]
    grace = "1d"                          # commits this soon after the last task are its own
    baselines = {}                        # { "004-x.md" = "2026-03-01", "005-y.md" = "3f9c2ab" }

The seed spec (shared/seeds) has every required section, 23 requirement items
and three acceptance tests, so it yields nothing until an impl task of it
completes; then only files it lists that are really absent, or changed
without it, are flagged.

Fires: ``004-x.md`` lists ``api/app/models/metrics.py``, its impl task has
completed and the file does not exist (``missing-file``).

Silent: the same before any impl task of it completes; or with
``baselines = { "004-x.md" = "2026-03-01" }`` and the spec unchanged since.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any, Literal, get_args

from pydantic import Field, field_validator

from rules.contract import Finding, RuleOptions
from rules.spec_drift import checks
from store import BacklogView
from store.timeutil import Duration

ID = "spec-drift"
# A finding's subject is a spec's path: a task filed for it names that spec.
SUBJECT_IS_SPEC = True

DEFAULTS: dict[str, object] = {"severity": "warning", "approval": "manual"}
# The option `reviewer report` suggests changing when this rule is noisy, and which way is quieter.
TUNING = {"option": "grace", "quieter": "higher"}

Kind = Literal["template", "untestable", "missing-file", "unrequested-change", "stale-spec"]


class Options(RuleOptions):
    patterns: list[str] = Field(default_factory=lambda: ["*.md", "*.txt"], min_length=1)
    exclude: list[str] = Field(default_factory=lambda: ["README*", "index.md", "_*"])
    kinds: list[Kind] = Field(default_factory=lambda: list(get_args(Kind)))
    required_sections: list[str] = Field(
        default_factory=lambda: [
            "Purpose",
            "Requirements",
            "Files to Create/Modify|Files",
        ]
    )
    requirements_section: str = "Requirements"
    acceptance_section: str = "Acceptance Tests|Acceptance Criteria"
    files_section: str = "Files to Create/Modify|Files to Create|Files to Modify|Files"
    min_covered_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    impl_task_types: list[str] = Field(default_factory=lambda: ["impl"], min_length=1)
    require_impl_done: bool = True
    ignore_changes: list[str] = Field(
        default_factory=lambda: ["tests/**", "test/**", "*/tests/**", "docs/**", "*.lock", "*.md"]
    )
    grace: Duration = timedelta(days=1)
    baselines: dict[str, str] = Field(default_factory=dict)

    @field_validator("baselines", mode="before")
    @classmethod
    def _baselines(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = {}
        for spec, mark in value.items():
            # TOML gives a bare 2026-03-01 as a date: take it as midnight UTC.
            text = mark.isoformat() if isinstance(mark, date | datetime) else str(mark)
            if checks.parse_baseline(text) is None:
                raise ValueError(
                    f"baseline for {spec!r}: {text!r} is neither a date "
                    "(2026-03-01 or 2026-03-01T12:00:00Z) nor a commit sha"
                )
            out[spec] = text
        return out


def check(options: Options, view: BacklogView) -> Iterator[Finding]:
    ws = view.workspace
    if ws is None:
        return
    specs = ws.spec_files(options.patterns, options.exclude)
    if not specs:
        return
    prefixes = ws.spec_ref_prefixes()
    tasks = checks.tasks_by_spec(view.spec_task_rollup(options.impl_task_types), prefixes)
    baselines = {checks.spec_ref(k, prefixes) or k: v for k, v in options.baselines.items()}
    for spec in specs:
        done = tasks.get(spec.path)
        # Review the workspace as of now: a spec written later is not judged yet. Outside git
        # an mtime after now may be a later edit of an older spec; a task of it completed by
        # now says the spec was there.
        existed = ws.existed_at(spec.path, view.now, in_specs=True)
        if existed is False or (existed is None and done is None):
            continue
        ctx = checks.SpecContext.build(
            spec, done, baselines.get(spec.path), prefixes, options, view
        )
        yield from checks.structure(ctx)
        yield from checks.missing_files(ctx)
        yield from checks.unrequested_changes(ctx)
        yield from checks.stale_spec(ctx)
