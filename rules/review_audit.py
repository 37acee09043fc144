"""review-audit: reviews that contradict the tests or give no reason; impls that skip their spec.

A review is only worth its cost when its decision is recorded, agrees with
what the tests say, and comes with a reason someone can act on; and an
implementation is only done when it touched what its spec asked for. This
rule audits completed review tasks and completed impl tasks.

How a review records its decision
---------------------------------
A review is a task of ``review_task_types`` (``review``). When it completes,
the pipeline records its decision in three task fields, which the store keeps
beside the CONTRACT's fields (unknown fields are kept, in ``extra``), e.g.
``{"id": "r-12", "task_type": "review", "status": "completed",
"review_decision": "pass", "review_rationale": "Retry path tested.",
"commit": "3f9c2ab41d0e..."}``:

``review_decision``
    ``pass``, ``fail`` or ``changes-requested``; anything else (or nothing)
    counts as no decision.
``review_rationale``
    why, in words someone can act on.
``commit``
    the commit the review judged: the full sha, as the test results were
    ingested with ``--commit``.

Kinds
-----
``inconsistent``
    A review passed a commit whose tests failed (a test whose latest result
    on that commit is failed or error), or failed (``fail`` or
    ``changes-requested``) with no rationale. One finding per review.
``no-decision``
    Among the reviews completed within ``window`` (at least ``min_reviews``),
    the share without a recorded decision or without a rationale is above
    ``max_undocumented_share``. Subject ``task_type:review``; the evidence
    gives the binomial probability of seeing that many at the limit share. A
    pipeline none of whose reviews in the window records a decision does not
    use the convention and is not judged.
``impl-vs-spec``
    A completed impl task (``impl_task_types``, finished within ``window``)
    whose spec lists files (its files section, read with spec-drift's parser)
    that none of the spec's completed impl tasks changed (``files_changed``;
    a listed directory or glob is met by a change under it). Impl tasks that
    record no ``files_changed`` say nothing and are skipped. One finding per
    spec, about its latest impl task.

Options (defaults shown)::

    [rules.review-audit]
    kinds = ["inconsistent", "no-decision", "impl-vs-spec"]
    window = "14d"                  # completed reviews and impls looked at
    review_task_types = ["review"]
    impl_task_types = ["impl"]
    max_undocumented_share = 0.2    # no-decision above this share of reviews
    min_reviews = 5                 # fewer reviews in the window say nothing
    files_section = "Files to Create/Modify|Files to Create|Files to Modify|Files"
    include_own_tasks = false       # also audit reviews the reviewer filed

Fires: review ``r1`` completed with ``review_decision = "pass"`` and ``commit
= "abc"`` while test ``t::a`` failed on ``abc`` (``inconsistent``); 4 of 6
reviews in the window have no decision (``no-decision``); impl ``i1`` of spec
``004-x.md``, which lists ``api/metrics.py`` and ``api/models.py``, changed
only ``api/metrics.py`` (``impl-vs-spec``).

Silent: ``r1`` when ``t::a`` passed on a rerun on ``abc``; 1 of 6 reviews
without a decision; ``i1`` when a second impl of the spec changed
``api/models.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Literal, get_args

from pydantic import Field

from rules.contract import Finding, RuleOptions, Severity
from rules.specs import covered, listed_files, norm_path, parse_sections, spec_ref
from store import BacklogView, json_list
from store.timeutil import Duration

ID = "review-audit"
DEFAULTS: dict[str, object] = {"severity": "warning", "approval": "manual"}
# The option `reviewer report` suggests changing when this rule is noisy, and which way is quieter.
TUNING = {"option": "max_undocumented_share", "quieter": "higher"}

Kind = Literal["inconsistent", "no-decision", "impl-vs-spec"]
DECISIONS = ("pass", "fail", "changes-requested")
_MAX_LISTED = 10


class Options(RuleOptions):
    kinds: list[Kind] = Field(default_factory=lambda: list(get_args(Kind)))
    window: Duration = timedelta(days=14)
    review_task_types: list[str] = Field(default_factory=lambda: ["review"], min_length=1)
    impl_task_types: list[str] = Field(default_factory=lambda: ["impl"], min_length=1)
    max_undocumented_share: float = Field(default=0.2, ge=0.0, lt=1.0)
    min_reviews: int = Field(default=5, ge=1)
    files_section: str = "Files to Create/Modify|Files to Create|Files to Modify|Files"
    include_own_tasks: bool = False


def check(options: Options, view: BacklogView) -> Iterator[Finding]:
    since = view.ago(options.window)
    if {"inconsistent", "no-decision"} & set(options.kinds):
        reviews = [
            r
            for r in view.completed_reviews(options.review_task_types, since)
            if options.include_own_tasks or r["source"] != "reviewer"
        ]
        if "inconsistent" in options.kinds:
            yield from _inconsistent(view, reviews)
        if "no-decision" in options.kinds:
            yield from _no_decision(options, reviews)
    if "impl-vs-spec" in options.kinds:
        yield from _impl_vs_spec(options, view, since)


def _decision(review: dict[str, Any]) -> str | None:
    value = (review["review_decision"] or "").strip().lower()
    return value if value in DECISIONS else None


def _inconsistent(view: BacklogView, reviews: list[dict[str, Any]]) -> Iterator[Finding]:
    passed = [r for r in reviews if _decision(r) == "pass" and r["review_commit"]]
    tests = view.commit_test_status([r["review_commit"] for r in passed]) if passed else {}
    for review in reviews:
        decision = _decision(review)
        status = tests.get(review["review_commit"] or "") if decision == "pass" else None
        if status is not None and int(status["failed"] or 0) > 0:
            failed, total = int(status["failed"]), int(status["tests"])
            sha = review["review_commit"][:12]
            yield Finding(
                kind="inconsistent",
                subject=review["id"],
                severity=Severity.error,
                summary=(
                    f"Review {review['id']} passed commit {sha} while "
                    f"{failed} of its {total} tests failed at their latest run on it "
                    f"(e.g. {status['first_failed']}); a pass expects 0 failing"
                ),
                evidence={
                    "title": review["title"],
                    "decision": decision,
                    "commit": review["review_commit"],
                    "tests": total,
                    "failed_tests": failed,
                    "first_failed": status["first_failed"],
                    "tests_last_ran": status["last_ran"],
                    "reviewed_at": review["finished_at"],
                },
                title=f"Re-review commit {sha}: review {review['id']} passed failing tests",
                why=(
                    "A review that passes a commit with failing tests lets broken work through "
                    "and teaches the pipeline that its reviews can be ignored."
                ),
                action=(
                    f"Look at why {status['first_failed']} fails on {sha}; "
                    f"reopen the reviewed work if the failure is real, and record in "
                    f"{review['id']} why it passed despite it if not."
                ),
                related=[review["id"]],
            )
        elif (
            decision in ("fail", "changes-requested")
            and not (review["review_rationale"] or "").strip()
        ):
            yield Finding(
                kind="inconsistent",
                subject=review["id"],
                summary=(
                    f"Review {review['id']} decided {decision!r} but gave no rationale: "
                    "nobody can tell what to change"
                ),
                evidence={
                    "title": review["title"],
                    "decision": decision,
                    "commit": review["review_commit"],
                    "reviewed_at": review["finished_at"],
                },
                title=f"Record why review {review['id']} decided {decision}",
                why=(
                    "A failed review without a reason sends the work back with nothing to act "
                    "on; the next attempt repeats the same mistake."
                ),
                action=(
                    f"Add a review_rationale to {review['id']} that says what fails and what "
                    "would make it pass."
                ),
                related=[review["id"]],
            )


def _no_decision(options: Options, reviews: list[dict[str, Any]]) -> Iterator[Finding]:
    n = len(reviews)
    if n < options.min_reviews:
        return
    missing_decision = [r["id"] for r in reviews if _decision(r) is None]
    missing_reason = [
        r["id"]
        for r in reviews
        if _decision(r) is not None and not (r["review_rationale"] or "").strip()
    ]
    if len(missing_decision) == n:
        # A pipeline that records no decision at all does not use the convention; the
        # share is judged once some reviews record one (otherwise it fires forever).
        return
    k = len(missing_decision) + len(missing_reason)
    share = k / n
    if share <= options.max_undocumented_share:
        return
    # How likely this many undocumented reviews are if the true share were the limit.
    from scipy.stats import binom  # here, not at the top: see rules/__init__.py

    chance = float(binom.sf(k - 1, n, options.max_undocumented_share))
    undocumented = missing_decision + missing_reason
    kinds = ", ".join(options.review_task_types)
    days = round(options.window.total_seconds() / 86400, 1)
    yield Finding(
        kind="no-decision",
        subject=f"task_type:{options.review_task_types[0]}",
        summary=(
            f"{k} of {n} {kinds} tasks completed in {days:g} days ({share:.0%}) recorded no "
            f"decision ({len(missing_decision)}) or no rationale ({len(missing_reason)}); limit "
            f"{options.max_undocumented_share:.0%} (chance of this many at the limit: "
            f"{chance:.2g})"
        ),
        evidence={
            "reviews": n,
            "undocumented": k,
            "no_decision": len(missing_decision),
            "no_rationale": len(missing_reason),
            "share": round(share, 3),
            "limit": options.max_undocumented_share,
            "chance_at_limit": round(chance, 6),
            "examples": undocumented[:_MAX_LISTED],
        },
        title=f"Make {kinds} tasks record their decision and rationale",
        why=(
            "A review whose decision is not recorded cannot be audited, counted or learned "
            "from; the pipeline pays for reviews it cannot use."
        ),
        action=(
            "Change the review step (or its prompt) so every completed review sets "
            "review_decision (pass, fail or changes-requested), review_rationale and commit; "
            f"examples without them: {', '.join(undocumented[:5])}."
        ),
        related=undocumented[:_MAX_LISTED],
    )


def _impl_vs_spec(options: Options, view: BacklogView, since: str) -> Iterator[Finding]:
    ws = view.workspace
    recent = view.completed_impl_with_spec(options.impl_task_types, since)
    if ws is None or not recent:
        return
    prefixes = ws.spec_ref_prefixes()
    specs = {s.path: s for s in ws.spec_files(["*.md", "*.txt"])}
    # Every spelling of the recent tasks' specs (``004-x.md``, ``specs/004-x.md``, ...).
    keys = {k for t in recent if (k := spec_ref(t["spec"], prefixes)) in specs}
    refs = sorted({f"{pre}{k}" for k in keys for pre in ["", "./", *prefixes]})
    by_spec: dict[str, list[dict[str, Any]]] = {}
    for task in view.completed_spec_tasks(refs, options.impl_task_types):
        key = spec_ref(task["spec"], prefixes)
        if key is not None and key in specs:
            by_spec.setdefault(key, []).append(task)
    for path, tasks in sorted(by_spec.items()):
        reporting = [t for t in tasks if json_list(t["files_changed"])]
        if not reporting:
            continue
        listed = listed_files(parse_sections(specs[path].text), options.files_section, prefixes)
        changed = {
            p
            for t in reporting
            for raw in json_list(t["files_changed"])
            if (p := norm_path(str(raw)))
        }
        missed = [f for f in listed if not any(covered(c, [f]) for c in changed)]
        if not missed:
            continue
        last = reporting[-1]
        done = len(listed) - len(missed)
        ids = [t["id"] for t in reporting]
        yield Finding(
            kind="impl-vs-spec",
            subject=last["id"],
            summary=(
                f"Impl {_plural(len(ids), 'task')} {', '.join(ids[-_MAX_LISTED:])} of spec "
                f"{path} changed {done} of the {len(listed)} files it lists; not changed: "
                f"{', '.join(missed[:_MAX_LISTED])}"
            ),
            evidence={
                "spec": path,
                "listed": listed,
                "missed": missed,
                "changed_listed": done,
                "impl_tasks": ids[-_MAX_LISTED:],
                "last_finished": last["finished_at"],
            },
            title=f"Finish or re-scope the implementation of spec {path}",
            why=(
                "An implementation that leaves files its spec lists untouched is either "
                "unfinished or was done differently from the spec; either way the spec and "
                "the code now disagree."
            ),
            action=(
                f"Check whether {', '.join(missed[:5])} still need the change {path} asks "
                f"for; reopen {last['id']} or file the rest as a task if so, or update the "
                "spec's file list if not."
            ),
            related=ids[-_MAX_LISTED:],
        )


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"
