"""Queries for flaky-tests: per-test outcome histories from JUnit runs.

Outcomes are ``passed``, ``failed``, ``error``, ``skipped`` and ``flaky`` (failed,
then passed on a rerun inside the same run). Every query ranks a test's
non-skipped runs newest first, ``ran_at`` then ``run_id`` breaking ties, so two
runs stamped with the same instant still have one order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

from store._q_base import QueryBase, Row

# Runs that count as a failure for flips and recovery, and as a pass for "passed
# on this commit": a rerun-flaky run is both.
_BAD = "('failed', 'error', 'flaky')"
_OK = "('passed', 'flaky')"
_FAILED = "('failed', 'error')"
# Bound the IN lists of follow-up queries well under every driver's parameter limit.
_CHUNK = 500


def _in_list(ids: Sequence[str]) -> tuple[str, dict[str, Any]]:
    marks = ", ".join(f":t{i}" for i in range(len(ids)))
    return marks, {f"t{i}": v for i, v in enumerate(ids)}


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


_WINDOW = """
ranked AS (
    SELECT r.test_id, r.commit_sha, r.outcome, r.message, r.ran_at,
           ROW_NUMBER() OVER (PARTITION BY r.test_id ORDER BY r.ran_at DESC, r.run_id DESC) AS rn
    FROM {{test_results}} r
    WHERE r.outcome <> 'skipped' AND r.test_id IN ({tests})
),
anchored AS (
    SELECT ranked.*,
           MIN(CASE WHEN outcome IN {bad} THEN rn END) OVER (PARTITION BY test_id) AS first_bad
    FROM ranked
),
win AS (SELECT * FROM anchored WHERE rn < COALESCE(first_bad, 1) + :window)
""".replace("{bad}", _BAD)


class FlakyQueries(QueryBase):
    """Aggregates in SQL over the as-of relations; small results only."""

    def test_outcome_summaries(
        self,
        *,
        window: int,
        failed_since: timedelta,
        broken_after: int,
        min_runs: int,
        flip_rate: float,
    ) -> list[Row]:
        """One row per test that may be flaky or broken, over its window of runs.

        A test's window is its last ``window`` non-skipped runs up to its latest
        failure, and the passes since (so a pass streak does not push the proof
        out of sight; the caller judges whether the streak clears it). Only
        tests with a failure in the last ``failed_since`` are looked at (a
        healthy suite's tests never reach the window functions), and only those
        that show a sign of trouble come back: a failing streak of ``broken_after`` runs, a
        commit that both passed and failed, a rerun-flaky run, or more than
        ``flip_rate`` flips per transition over at least ``min_runs`` runs.
        Columns: ``runs``, ``failures``, ``flips``, ``rerun_flaky``,
        ``mixed_commits``, ``streak`` (consecutive failed/error runs, newest
        first), ``streak_commits_passed`` (commits of the streak that also
        passed), ``passes_since_failure``, ``last_failure_at``, ``last_run_at``.
        """
        bounds = {
            "window": window,
            "broken_after": broken_after,
            "min_runs": min_runs,
            "flip_rate": flip_rate,
        }
        # The candidates come from the (outcome, ran_at, test_id) index alone and
        # go back as literal lists: PostgreSQL then reads their histories through
        # the (test_id, ran_at) index instead of hash-joining a full table scan.
        candidates = [
            row["test_id"]
            for row in self.rows(
                f"SELECT DISTINCT test_id FROM {{test_results}}"
                f" WHERE outcome IN {_BAD} AND ran_at >= :failed_since ORDER BY test_id",
                {"failed_since": self.ago(failed_since)},
            )
        ]
        out: list[Row] = []
        for chunk in _chunks(candidates):
            marks, params = _in_list(chunk)
            out.extend(self.rows(self._summary_sql(marks), {**params, **bounds}))
        return out

    @staticmethod
    def _summary_sql(marks: str) -> str:
        return f"""
        WITH {_WINDOW.format(tests=marks)},
        marked AS (
            SELECT test_id, commit_sha, outcome, ran_at, rn,
                   CASE WHEN outcome = 'passed' THEN 0 ELSE 1 END AS bad,
                   LAG(CASE WHEN outcome = 'passed' THEN 0 ELSE 1 END)
                       OVER (PARTITION BY test_id ORDER BY rn DESC) AS prev_bad,
                   COALESCE(
                       MIN(CASE WHEN outcome NOT IN {_FAILED} THEN rn END)
                           OVER (PARTITION BY test_id),
                       COUNT(*) OVER (PARTITION BY test_id) + 1
                   ) - 1 AS streak
            FROM win
        ),
        per_commit AS (
            SELECT test_id, commit_sha, MIN(rn) AS newest_rn, MIN(streak) AS streak,
                   MAX(CASE WHEN outcome IN {_OK} THEN 1 ELSE 0 END) AS passed,
                   MAX(CASE WHEN outcome IN {_BAD} THEN 1 ELSE 0 END) AS failed
            FROM marked GROUP BY test_id, commit_sha
        ),
        by_commit AS (
            SELECT test_id,
                   SUM(CASE WHEN passed = 1 AND failed = 1 THEN 1 ELSE 0 END) AS mixed_commits,
                   SUM(CASE WHEN passed = 1 AND newest_rn <= streak THEN 1 ELSE 0 END)
                       AS streak_commits_passed
            FROM per_commit GROUP BY test_id
        ),
        per_test AS (
            SELECT test_id, COUNT(*) AS runs, SUM(bad) AS failures,
                   SUM(CASE WHEN prev_bad <> bad THEN 1 ELSE 0 END) AS flips,
                   SUM(CASE WHEN outcome = 'flaky' THEN 1 ELSE 0 END) AS rerun_flaky,
                   MIN(streak) AS streak,
                   MIN(CASE WHEN bad = 1 THEN rn END) - 1 AS passes_since_failure,
                   MAX(CASE WHEN bad = 1 THEN ran_at END) AS last_failure_at,
                   MAX(ran_at) AS last_run_at
            FROM marked GROUP BY test_id
        )
        SELECT t.test_id, t.runs, t.failures, t.flips, t.rerun_flaky, t.streak,
               t.passes_since_failure, t.last_failure_at, t.last_run_at,
               c.mixed_commits, c.streak_commits_passed
        FROM per_test t JOIN by_commit c ON c.test_id = t.test_id
        WHERE (t.streak >= :broken_after OR c.mixed_commits > 0 OR t.rerun_flaky > 0
               OR (t.runs >= :min_runs AND t.flips > :flip_rate * (t.runs - 1)))
        ORDER BY t.test_id
        """

    def test_failure_details(self, test_ids: Sequence[str], *, window: int) -> list[Row]:
        """Failure messages and pass-and-fail commits of tests over their last ``window`` runs.

        Rows are ``(test_id, item, value, n, last_at)``: ``item`` is ``message``
        (a distinct failure message, '' when a run gave none, and how many failed
        runs gave it) or ``commit`` (a commit the test both passed and failed on,
        and how many runs it had there).
        """
        out: list[Row] = []
        for chunk in _chunks(test_ids):
            marks, params = _in_list(chunk)
            sql = f"""
            WITH {_WINDOW.format(tests=marks)}
            SELECT test_id, 'message' AS item, COALESCE(message, '') AS value,
                   COUNT(*) AS n, MAX(ran_at) AS last_at
            FROM win WHERE outcome IN {_BAD}
            GROUP BY test_id, COALESCE(message, '')
            UNION ALL
            SELECT test_id, 'commit' AS item, commit_sha AS value,
                   COUNT(*) AS n, MAX(ran_at) AS last_at
            FROM win GROUP BY test_id, commit_sha
            HAVING MAX(CASE WHEN outcome IN {_OK} THEN 1 ELSE 0 END) = 1
               AND MAX(CASE WHEN outcome IN {_BAD} THEN 1 ELSE 0 END) = 1
            """
            out.extend(self.rows(sql, {**params, "window": window}))
        return out

    def failing_streaks(self, test_ids: Sequence[str]) -> list[Row]:
        """Where each test's current run of failures began, looking past any window.

        Columns: ``test_id``, ``streak_runs`` (non-skipped runs since the last
        pass, all failed), ``first_failed_at`` / ``first_failed_commit`` (the
        first run of the streak), ``last_passed_at`` / ``last_passed_commit``
        (the last run that passed, NULL if it never did).
        """
        out: list[Row] = []
        for chunk in _chunks(test_ids):
            marks, params = _in_list(chunk)
            # One pass over each test's own runs (an outcome filter here would
            # tempt SQLite to walk the outcome index through every pass of the suite).
            sql = f"""
            WITH runs AS MATERIALIZED (
                SELECT r.test_id, r.run_id, r.commit_sha, r.outcome, r.ran_at,
                       MAX(CASE WHEN r.outcome IN {_OK} THEN r.ran_at END)
                           OVER (PARTITION BY r.test_id) AS last_passed_at
                FROM {{test_results}} r WHERE r.test_id IN ({marks})
            ),
            streak AS (
                SELECT test_id, commit_sha, ran_at, last_passed_at,
                       ROW_NUMBER() OVER (PARTITION BY test_id ORDER BY ran_at, run_id) AS pos,
                       COUNT(*) OVER (PARTITION BY test_id) AS streak_runs
                FROM runs
                WHERE outcome IN {_FAILED} AND (last_passed_at IS NULL OR ran_at > last_passed_at)
            ),
            last_pass AS (
                SELECT test_id, MAX(commit_sha) AS commit_sha FROM runs
                WHERE outcome IN {_OK} AND ran_at = last_passed_at GROUP BY test_id
            )
            SELECT s.test_id, s.streak_runs, s.ran_at AS first_failed_at,
                   s.commit_sha AS first_failed_commit, s.last_passed_at,
                   p.commit_sha AS last_passed_commit
            FROM streak s LEFT JOIN last_pass p ON p.test_id = s.test_id
            WHERE s.pos = 1
            """
            out.extend(self.rows(sql, params))
        return out

    def long_skipped_tests(self, skipped_for: timedelta) -> list[Row]:
        """Tests skipped in every run for at least ``skipped_for``, longest first.

        A test qualifies when it ran (skipped) at least once since ``now -
        skipped_for``, every run since then was skipped, and its current skip
        streak began at or before that instant. Columns: ``test_id``,
        ``skipped_since`` (first skip of the streak), ``skipped_runs``,
        ``last_ran_at`` (last run that was not skipped, NULL if none),
        ``message`` (the latest skip message).
        """
        # Only a test skipped since the cut-off can qualify: find those in the
        # (outcome, ran_at, test_id) index, then look each one up on its own
        # (test_id, ran_at) index, never joining them to the whole table. Every
        # run after a test's last run that was not skipped was skipped, so the
        # streak's lookups need no outcome test (which would tempt SQLite into
        # walking the outcome index once per test).
        streak_runs = """FROM {test_results} s WHERE s.test_id = n.test_id
                      AND (n.last_ran_at IS NULL OR s.ran_at > n.last_ran_at)"""
        sql = f"""
        WITH skipped AS (
            SELECT DISTINCT test_id FROM {{test_results}}
            WHERE outcome = 'skipped' AND ran_at >= :cutoff
        ),
        ran AS MATERIALIZED (
            SELECT c.test_id,
                   (SELECT MAX(x.ran_at) FROM {{test_results}} x
                    WHERE x.test_id = c.test_id AND x.outcome <> 'skipped') AS last_ran_at
            FROM skipped c
        ),
        streak AS MATERIALIZED (
            SELECT n.test_id, n.last_ran_at,
                   (SELECT MIN(s.ran_at) {streak_runs}) AS skipped_since,
                   (SELECT COUNT(*) {streak_runs}) AS skipped_runs,
                   (SELECT MAX(s.ran_at) {streak_runs}) AS last_skipped_at
            FROM ran n
            WHERE n.last_ran_at IS NULL OR n.last_ran_at < :cutoff
        )
        SELECT k.test_id, k.skipped_since, k.skipped_runs, k.last_ran_at,
               (SELECT MAX(m.message) FROM {{test_results}} m
                WHERE m.test_id = k.test_id AND m.ran_at = k.last_skipped_at
                  AND m.outcome = 'skipped') AS message
        FROM streak k
        WHERE k.skipped_since <= :cutoff
        ORDER BY k.skipped_since, k.test_id
        """
        return self.rows(sql, {"cutoff": self.ago(skipped_for)})
