"""flaky-tests: tests that fail at random, tests that broke, and tests left skipped.

A flaky test fails builds that did nothing wrong, teaches people to press
"retry" and hides real failures among the noise. A broken test fails every
run since some commit and needs a fix, not a quarantine. A test skipped for
weeks protects nothing while it looks like coverage. This rule reads the
JUnit results the pipeline ingested (a test is ``classname::name``) and
tells the three apart, like Google's Flaky Bot and the flaky-test views of
Buildkite, Datadog and Trunk.

Kinds
-----
``flaky`` (proposes a quarantine, and a ``quarantine test:ID`` control once approved)
    Within its last ``window`` non-skipped runs the test both passed and
    failed (or errored) on one commit, or a single run failed and then passed
    on a rerun (outcome ``flaky``): either is proof. Or, with at least
    ``min_runs`` runs, it flipped between pass and fail in more than
    ``flip_rate`` of consecutive runs (skipped runs ignored; ties in
    ``ran_at`` are ordered by run id). The window is the test's last
    ``window`` runs up to its latest failure, plus the passes since, so passes
    alone never push the proof out of sight. The finding reports the test's
    failure rate over that window with its 95% Jeffreys interval. It recovers,
    and the finding clears, only when its pass streak since the last failure
    is improbable for a test still that flaky: ``(1 - p)^k`` below
    ``recover_chance``, where ``k`` is the streak and ``p`` its failure rate
    over the window, streak included (a 5%-flaky test passes 10 in a row 60%
    of the time; that clears nothing). As the streak grows ``(1 - p)^k`` tends
    to ``e^-failures``, so a streak can clear only a test seen failing at
    least 5 times in its window (at 0.01); a rarer flake recovers when it has
    not failed for ``recover_after`` (the quiet period). A steady flake
    therefore stays one open finding.
``broken`` (proposes a fix)
    Its last ``broken_after`` runs (or more) all failed, none of the commits
    of that failing streak ever passed, and the streak is not plausibly the
    chance run of a flaky test: the test's failure rate before the streak,
    raised to the streak's length, is at most ``broken_max_chance``. A test
    that passed for a while and then fails every time has flipped once; that
    is a break, not flakiness, and it is reported as broken only.
``holdout`` (proposes re-enabling or deleting the test)
    Every run of the test in the last ``skipped_for`` skipped it (and there
    was at least one), and the skipping began at least ``skipped_for`` ago.

A test gets at most one finding: holdout, else broken, else flaky.

Options (defaults shown)::

    [rules.flaky-tests]
    window = 30                  # judge each test on its last 30 non-skipped runs
    min_runs = 8                 # fewest runs for the flip-rate test
    flip_rate = 0.2              # flips / (runs - 1) above this is flaky
    recover_chance = 0.01        # a pass streak this unlikely for the test's failure rate clears it
    recover_after = "7d"         # ... and so does this long without a failure
    broken_after = 3             # this many failed runs in a row, on commits that never passed
    broken_max_chance = 0.001    # a likelier streak is chance, i.e. flakiness (0.3^4 = 0.008)
    skipped_for = "14d"          # skipped in every run for this long is a holdout
    max_messages = 5             # distinct failure messages quoted in a finding

Fires: ``api.tests::test_login`` failed on commit ``a1b2c3`` and passed when
the same commit was run again, on 2026-03-04; reviewed 2026-03-05 → flaky.
Or ``db::test_migrate`` passed on every run up to commit ``d4e5f6`` and has
failed the 4 runs since → broken, first failing commit ``d4e5f6``.

Silent: a test that failed on one commit only and passed ever after; a test
that failed once on 2026-02-20 and has not failed since (quiet for 13 days);
a test skipped only since 2026-03-01 (4 days of skips, limit 14 days).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from pydantic import Field, model_validator

from rules.contract import Finding, RuleOptions
from rules.flaky_tests.text import broken_finding, flaky_finding, holdout_finding
from store import BacklogView, Row
from store.timeutil import Duration, parse_ts

ID = "flaky-tests"
# `reviewer demo` files this rule's proposals on auto, to show the auto path.
DEMO_AUTO = True

DEFAULTS: dict[str, object] = {"severity": "warning", "approval": "manual"}
# The option `reviewer report` suggests changing when this rule is noisy, and which way is quieter.
TUNING = {"option": "flip_rate", "quieter": "higher"}


class Options(RuleOptions):
    window: int = Field(default=30, ge=2)
    min_runs: int = Field(default=8, ge=2)
    flip_rate: float = Field(default=0.2, ge=0.0, lt=1.0)
    recover_chance: float = Field(default=0.01, gt=0.0, lt=1.0)
    recover_after: Duration = timedelta(days=7)
    broken_after: int = Field(default=3, ge=1)
    broken_max_chance: float = Field(default=0.001, ge=0.0, le=1.0)
    skipped_for: Duration = timedelta(days=14)
    max_messages: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _fit_the_window(self) -> Options:
        for name in ("min_runs", "broken_after"):
            if getattr(self, name) > self.window:
                raise ValueError(
                    f"{name} ({getattr(self, name)}) cannot exceed window ({self.window}): "
                    "only the last `window` runs of a test are looked at"
                )
        if self.recover_after <= timedelta(0) or self.skipped_for <= timedelta(0):
            raise ValueError("recover_after and skipped_for must be positive durations")
        return self


def _streak_chance_if_flaky(row: Row) -> float:
    """How likely the current failing streak is from the test's failure rate before it."""
    streak = int(row["streak"])
    before = int(row["runs"]) - streak
    rate = (int(row["failures"]) - streak) / before if before else 0.0
    return float(rate**streak)


def _is_broken(row: Row, options: Options) -> bool:
    if int(row["streak"]) < options.broken_after or row["streak_commits_passed"]:
        return False
    # How likely is a streak this long from the test's own earlier failure rate?
    # A test that rarely failed before and now always fails broke; one that
    # failed a third of the time can fail three times running by chance.
    return _streak_chance_if_flaky(row) <= options.broken_max_chance


def _is_flaky(row: Row, options: Options) -> bool:
    runs = int(row["runs"])
    flips = int(row["flips"])
    if row["mixed_commits"] or row["rerun_flaky"]:
        return True
    return runs >= options.min_runs and flips > options.flip_rate * (runs - 1)


def failure_rate(failures: int, runs: int) -> tuple[float, float, float]:
    """The failure rate and its 95% Jeffreys interval (0, 0, 1 without runs)."""
    if runs <= 0:
        return 0.0, 0.0, 1.0
    from scipy.stats import beta  # here, not at the top: see rules/__init__.py

    a, b = failures + 0.5, runs - failures + 0.5
    low = float(beta.ppf(0.025, a, b)) if failures > 0 else 0.0
    high = float(beta.ppf(0.975, a, b)) if failures < runs else 1.0
    return failures / runs, low, high


def window_rate(row: Row) -> tuple[float, float, float]:
    """The test's failure rate over its window, with the 95% Jeffreys interval."""
    return failure_rate(int(row["failures"]), int(row["runs"]))


def streak_chance(row: Row) -> float:
    """How likely the passes since the last failure are at the test's own failure rate."""
    rate, _, _ = window_rate(row)
    return float((1.0 - rate) ** int(row["passes_since_failure"] or 0))


def _recovered(row: Row, options: Options) -> bool:
    return streak_chance(row) < options.recover_chance


def check(options: Options, view: BacklogView) -> Iterator[Finding]:
    held_out: set[str] = set()
    for row in view.long_skipped_tests(options.skipped_for):
        held_out.add(row["test_id"])
        skipped = view.now - parse_ts(row["skipped_since"])
        yield holdout_finding(row, skipped, options.skipped_for)

    summaries = view.test_outcome_summaries(
        window=options.window,
        failed_since=options.recover_after,
        broken_after=options.broken_after,
        min_runs=options.min_runs,
        flip_rate=options.flip_rate,
    )
    broken: list[Row] = []
    flaky: list[Row] = []
    for row in summaries:
        if row["test_id"] in held_out:
            continue
        if _is_broken(row, options):
            broken.append(row)
        elif _is_flaky(row, options) and not _recovered(row, options):
            flaky.append(row)

    streaks = {r["test_id"]: r for r in view.failing_streaks([r["test_id"] for r in broken])}
    for row in broken:
        yield broken_finding(row, streaks.get(row["test_id"]), _streak_chance_if_flaky(row))

    details: dict[str, list[Row]] = {}
    for d in view.test_failure_details([r["test_id"] for r in flaky], window=options.window):
        details.setdefault(d["test_id"], []).append(d)
    for row in flaky:
        found = details.get(row["test_id"], [])
        rate, chance = window_rate(row), streak_chance(row)
        yield flaky_finding(row, found, options.window, options.max_messages, rate, chance)
