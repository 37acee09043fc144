"""test-health: coverage that dropped, spec'd code barely tested, tests that stopped running.

Tests protect only what they run. Coverage that falls from one commit to the
next means new code arrived untested or tests were lost; a file a spec lists
that its tests hardly touch is work nobody checks; and a test still in the
code that no run executes any more (deselected in the runner's configuration,
``--deselect``, ``-k``, an ignored path) protects nothing while looking like
part of the suite. Coverage comes from ``reviewer ingest coverage FILE.xml
--commit SHA [--branch B]`` or ``POST /api/coverage`` (Cobertura XML).

Kinds
-----
``coverage-drop``
    The line coverage of a branch's latest commit is more than ``max_drop``
    percentage points below the mean of its previous ``baseline_commits``
    commits (within ``baseline_window``, at least ``min_baseline`` of them),
    and the drop is at least ``min_score`` times their standard deviation (a
    baseline that never moved needs only ``max_drop``). Subject
    ``branch:NAME`` (``branch:`` for reports without one). The evidence names
    the files that lost most against the previous commit.
``low-coverage``
    Files a spec lists (its files section, read as spec-drift reads it) whose
    line coverage at the latest commit (of ``branch``; ``"*"`` is any) is
    below ``min_file_coverage``. A coverage path and a listed path match when
    one ends with the other (coverage.py writes paths relative to its source
    directory). One finding per spec.
``excluded-tests``
    A test that has results, whose latest result is older than
    ``excluded_after`` (and newer than ``forget_after``), while at least
    ``excluded_min_runs`` test runs happened since, and whose test is still
    in the repository: its file (the JUnit ``file`` attribute, else the
    classname as a path) exists under ``repo_dir`` and names it. That is a
    test the pipeline's configuration excludes, read from the test results
    and the repository rather than from each runner's own configuration
    format. A test that still runs but is skipped each time produces skipped
    results, so it is flaky-tests' ``holdout`` and never this kind; a test
    deleted from the code is not reported.

Options (defaults shown)::

    [rules.test-health]
    kinds = ["coverage-drop", "low-coverage", "excluded-tests"]
    baseline_window = "30d"     # commits of a branch judged against each other
    baseline_commits = 10       # previous commits in the baseline
    min_baseline = 3            # fewer say nothing
    max_drop = 1.0              # percentage points below the baseline mean
    min_score = 2.0             # ... and this many baseline standard deviations
    branch = "*"                # low-coverage judges the latest commit of this branch
    min_file_coverage = 0.6     # a listed file below this share of lines is low
    files_section = "Files to Create/Modify|Files to Create|Files to Modify|Files"
    excluded_after = "14d"      # no result for this long
    excluded_min_runs = 3       # ... while this many test runs went on
    forget_after = "90d"        # tests gone longer than this are history

Fires: ``main`` had 80.1, 80.3, 79.9 and 80.2% line coverage and its latest
commit has 74.0% (6.1 points below the mean, spread 0.2: ``coverage-drop``);
spec ``004-x.md`` lists ``api/metrics.py``, covered 35% (``low-coverage``);
``tests.test_api::test_login`` last ran 20 days ago, 30 runs went on without
it and ``tests/test_api.py`` still defines it (``excluded-tests``).

Silent: the latest commit at 79.5% (0.6 points below); ``api/metrics.py`` at
70%; ``test_login`` removed from ``tests/test_api.py``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Literal, get_args

from pydantic import Field

from rules.contract import Finding, RuleOptions
from rules.specs import covered, listed_files, norm_path, parse_sections
from store import BacklogView
from store.timeutil import Duration, fmt_duration, parse_ts

ID = "test-health"
DEFAULTS: dict[str, object] = {"severity": "warning", "approval": "manual"}
# The option `reviewer report` suggests changing when this rule is noisy, and which way is quieter.
TUNING = {"option": "max_drop", "quieter": "higher"}

Kind = Literal["coverage-drop", "low-coverage", "excluded-tests"]
_MAX_LISTED = 10
_PARAMS = re.compile(r"\[.*\]$")


class Options(RuleOptions):
    kinds: list[Kind] = Field(default_factory=lambda: list(get_args(Kind)))
    baseline_window: Duration = timedelta(days=30)
    baseline_commits: int = Field(default=10, ge=1)
    min_baseline: int = Field(default=3, ge=1)
    max_drop: float = Field(default=1.0, ge=0.0)
    min_score: float = Field(default=2.0, ge=0.0)
    branch: str = "*"
    min_file_coverage: float = Field(default=0.6, ge=0.0, le=1.0)
    files_section: str = "Files to Create/Modify|Files to Create|Files to Modify|Files"
    excluded_after: Duration = timedelta(days=14)
    excluded_min_runs: int = Field(default=3, ge=1)
    forget_after: Duration = timedelta(days=90)


def check(options: Options, view: BacklogView) -> Iterator[Finding]:
    if "coverage-drop" in options.kinds:
        yield from _drops(options, view)
    if "low-coverage" in options.kinds:
        yield from _low_coverage(options, view)
    if "excluded-tests" in options.kinds:
        yield from _excluded(options, view)


def _pct(covered_lines: Any, valid: Any) -> float:
    return 100.0 * float(covered_lines or 0) / float(valid) if valid else 0.0


def _drops(options: Options, view: BacklogView) -> Iterator[Finding]:
    by_branch: dict[str, list[dict[str, Any]]] = {}
    for row in view.coverage_commits(view.ago(options.baseline_window)):
        by_branch.setdefault(row["branch"], []).append(row)
    for branch, commits in sorted(by_branch.items()):
        latest, base = commits[-1], commits[:-1][-options.baseline_commits :]
        if len(base) < options.min_baseline:
            continue
        rates = [_pct(c["lines_covered"], c["lines_valid"]) for c in base]
        mean = sum(rates) / len(rates)
        spread = (
            math.sqrt(sum((r - mean) ** 2 for r in rates) / (len(rates) - 1))
            if len(rates) > 1
            else 0.0
        )
        observed = _pct(latest["lines_covered"], latest["lines_valid"])
        drop = mean - observed
        score = drop / spread if spread > 0 else None
        if drop <= options.max_drop or (score is not None and score < options.min_score):
            continue
        losers = _file_losses(view, base[-1]["commit_sha"], latest["commit_sha"])
        name = branch or "(no branch)"
        said = (
            f"{score:.1f} standard deviations"
            if score is not None
            else "a baseline that never moved"
        )
        yield Finding(
            kind="coverage-drop",
            subject=f"branch:{branch}",
            summary=(
                f"Line coverage of {name} fell to {observed:.1f}% at commit "
                f"{latest['commit_sha'][:12]}, {drop:.1f} points below the mean of its previous "
                f"{len(base)} commits ({mean:.1f}%, spread {spread:.1f}; {said}; limit "
                f"{options.max_drop:g} points)"
            ),
            evidence={
                "branch": branch,
                "commit": latest["commit_sha"],
                "recorded_at": latest["recorded_at"],
                "observed_percent": round(observed, 2),
                "baseline_mean_percent": round(mean, 2),
                "baseline_spread": round(spread, 2),
                "baseline_commits": [c["commit_sha"] for c in base],
                "drop_points": round(drop, 2),
                "score": round(score, 2) if score is not None else None,
                "files_lost_most": losers,
            },
            title=f"Restore test coverage on {name} after commit {latest['commit_sha'][:12]}",
            why=(
                "Coverage that falls from one commit to the next means new code arrived without "
                "tests, or tests were lost; either way less of the code is checked than before."
            ),
            action=(
                f"Look at what commit {latest['commit_sha'][:12]} changed"
                + (f", starting with {', '.join(f['file'] for f in losers[:3])}" if losers else "")
                + ", and add the tests it needs (or restore the ones it removed)."
            ),
            related=[latest["commit_sha"]],
        )


def _file_losses(view: BacklogView, before: str, after: str) -> list[dict[str, Any]]:
    """Files of ``after`` ordered by the covered lines they lack against ``before``'s rate."""
    rows = view.coverage_files([before, after])
    old = {r["file"]: r for r in rows if r["commit_sha"] == before}
    out = []
    for r in rows:
        if r["commit_sha"] != after:
            continue
        now_pct = _pct(r["lines_covered"], r["lines_valid"])
        prev = old.get(r["file"])
        was = _pct(prev["lines_covered"], prev["lines_valid"]) if prev else None
        lost = ((was if was is not None else 100.0) - now_pct) * float(r["lines_valid"]) / 100
        if lost > 0:
            out.append(
                {
                    "file": r["file"],
                    "percent": round(now_pct, 1),
                    "was_percent": round(was, 1) if was is not None else None,
                    "uncovered_lines": int(r["lines_valid"]) - int(r["lines_covered"]),
                    "_lost": lost,
                }
            )
    out.sort(key=lambda f: (-f["_lost"], f["file"]))
    for f in out:
        f.pop("_lost")
    return out[:5]


def _matches(cov: str, listed: str) -> bool:
    if cov == listed or cov.endswith("/" + listed) or listed.endswith("/" + cov):
        return True
    return covered(cov, [listed])


def _low_coverage(options: Options, view: BacklogView) -> Iterator[Finding]:
    ws = view.workspace
    latest = view.latest_coverage_commit(None if options.branch == "*" else options.branch)
    if ws is None or latest is None:
        return
    files = view.coverage_files([latest["commit_sha"]])
    total = _pct(latest["lines_covered"], latest["lines_valid"])
    prefixes = ws.spec_ref_prefixes()
    limit = options.min_file_coverage * 100
    for spec in ws.spec_files(["*.md", "*.txt"], ["README*", "index.md", "_*"]):
        listed = listed_files(parse_sections(spec.text), options.files_section, prefixes)
        if not listed:
            continue
        low = []
        for f in files:
            path = norm_path(f["file"]) or f["file"]
            pct = _pct(f["lines_covered"], f["lines_valid"])
            if pct < limit and any(_matches(path, p) for p in listed):
                low.append({"file": f["file"], "percent": round(pct, 1), "lines": f["lines_valid"]})
        if not low:
            continue
        shown = ", ".join(f"{f['file']} {f['percent']:g}%" for f in low[:_MAX_LISTED])
        yield Finding(
            kind="low-coverage",
            subject=spec.path,
            summary=(
                f"{len(low)} {'file' if len(low) == 1 else 'files'} that spec {spec.path} lists "
                f"{'is' if len(low) == 1 else 'are'} covered below {limit:g}% at commit "
                f"{latest['commit_sha'][:12]}: {shown} (the commit overall: {total:.1f}%)"
            ),
            evidence={
                "spec": spec.path,
                "commit": latest["commit_sha"],
                "branch": latest["branch"],
                "files": low[:_MAX_LISTED],
                "threshold_percent": limit,
                "commit_percent": round(total, 2),
            },
            title=f"Add tests for the code of spec {spec.path}",
            why=(
                "The files a spec lists are the work it asks for; when tests barely touch them, "
                "nobody checks that the work does what the spec says."
            ),
            action=(
                f"Write tests that exercise {', '.join(f['file'] for f in low[:5])} against the "
                f"acceptance tests of {spec.path}, up to at least {limit:g}% of their lines."
            ),
            task_type="test",
        )


def _test_sources(row: dict[str, Any]) -> list[str]:
    """Where a test may be defined: its JUnit ``file``, else its classname read as a path."""
    if row["file"]:
        return [str(row["file"])]
    parts = str(row["classname"] or "").split(".")
    out = []
    for n in range(len(parts), 0, -1):
        stem = "/".join(parts[:n])
        out += [f"{stem}.py", f"src/test/java/{stem}.java", f"{stem}.java"]
    return out


def _excluded(options: Options, view: BacklogView) -> Iterator[Finding]:
    ws = view.workspace
    if ws is None:
        return
    cutoff = view.ago(options.excluded_after)
    runs = view.test_runs_since(cutoff)
    if runs < options.excluded_min_runs:
        return
    for row in view.vanished_tests(cutoff, view.ago(options.forget_after)):
        name = _PARAMS.sub("", str(row["name"] or row["test_id"].split("::")[-1]))
        defined = re.compile(rf"\b{re.escape(name)}\b")
        source = next(
            (p for p in _test_sources(row) if defined.search(ws.file_text(p) or "")), None
        )
        if source is None:
            continue  # deleted, or defined where we cannot see: not an exclusion we can prove
        gone = view.now - parse_ts(row["last_ran"])
        yield Finding(
            kind="excluded-tests",
            subject=row["test_id"],
            summary=(
                f"Test {row['test_id']} has not run for {fmt_duration(gone)} (limit "
                f"{fmt_duration(options.excluded_after)}): 0 results in the {runs} test runs of "
                f"the last {fmt_duration(options.excluded_after)} (it had {row['results']} "
                f"before), though {source} still defines it"
            ),
            evidence={
                "test_id": row["test_id"],
                "source": source,
                "last_ran": row["last_ran"],
                "last_outcome": row["last_outcome"],
                "absent_days": round(gone.total_seconds() / 86400, 1),
                "runs_without_it": runs,
                "results_before": int(row["results"]),
            },
            title=f"Run again or delete excluded test {row['test_id']}",
            why=(
                "A test the runner's configuration deselects still looks like part of the suite "
                "but protects nothing; the longer it is out, the more it drifts from the code."
            ),
            action=(
                f"Find what excludes {row['test_id']} from the runs (a --deselect, -k or ignore "
                "in the test configuration, a CI matrix) and re-enable it, fixing it if it "
                f"fails; or delete it from {source} if it is no longer wanted."
            ),
            task_type="test",
        )
