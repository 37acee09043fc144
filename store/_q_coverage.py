"""Queries for test-health: coverage per commit and per file, tests that stopped running."""

from __future__ import annotations

from collections.abc import Sequence

from store._q_base import QueryBase, Row
from store._q_specs import _in_list


class CoverageQueries(QueryBase):
    """Commit totals are sums over the commit's files; small results only."""

    def coverage_commits(self, since: str) -> list[Row]:
        """Each commit's line coverage recorded after ``since``, per branch, oldest first.

        Columns: ``branch`` ('' for none), ``commit_sha``, ``recorded_at`` (the
        latest report of the commit), ``lines_valid``, ``lines_covered``, ``files``.
        """
        return self.rows(
            """SELECT COALESCE(branch, '') AS branch, commit_sha,
                      MAX(recorded_at) AS recorded_at, SUM(lines_valid) AS lines_valid,
                      SUM(lines_covered) AS lines_covered, COUNT(*) AS files
               FROM {coverage}
               WHERE recorded_at > :since AND lines_valid > 0
               GROUP BY COALESCE(branch, ''), commit_sha
               ORDER BY 1, 3, 2""",
            {"since": since},
        )

    def coverage_files(self, commits: Sequence[str]) -> list[Row]:
        """Per-file figures of the given commits: ``commit_sha``, ``file``, lines measured
        and covered, branches measured and covered.
        """
        marks, params = _in_list("c", commits)
        return self.rows(
            f"""SELECT commit_sha, file, lines_valid, lines_covered, branches_valid,
                       branches_covered
                FROM {{coverage}} WHERE commit_sha IN {marks} AND lines_valid > 0
                ORDER BY commit_sha, file""",
            params,
        )

    def latest_coverage_commit(self, branch: str | None) -> Row | None:
        """The commit of the latest coverage report (on ``branch``, when given)."""
        where, params = (
            ("", {}) if branch is None else ("AND COALESCE(branch, '') = :b", {"b": branch})
        )
        rows = self.rows(
            f"""SELECT commit_sha, COALESCE(branch, '') AS branch, MAX(recorded_at) AS recorded_at,
                       SUM(lines_valid) AS lines_valid, SUM(lines_covered) AS lines_covered
                FROM {{coverage}} WHERE lines_valid > 0 {where}
                GROUP BY commit_sha, COALESCE(branch, '')
                ORDER BY MAX(recorded_at) DESC, commit_sha DESC LIMIT 1""",
            params,
        )
        return rows[0] if rows else None

    def vanished_tests(self, last_before: str, seen_after: str) -> list[Row]:
        """Tests whose latest result is at or before ``last_before`` but after ``seen_after``.

        Columns: ``test_id``, ``classname``, ``name``, ``file``, ``last_ran``,
        ``last_outcome`` (of that latest result), ``results``.
        """
        return self.rows(
            """SELECT v.test_id, v.classname, v.name, v.file, v.last_ran, v.results,
                      (SELECT MAX(o.outcome) FROM {test_results} o
                       WHERE o.test_id = v.test_id AND o.ran_at = v.last_ran) AS last_outcome
               FROM (SELECT test_id, MAX(classname) AS classname, MAX(name) AS name,
                            MAX(file) AS file, MAX(ran_at) AS last_ran, COUNT(*) AS results
                     FROM {test_results} GROUP BY test_id
                     HAVING MAX(ran_at) <= :last_before AND MAX(ran_at) > :seen_after) v
               ORDER BY v.test_id""",
            {"last_before": last_before, "seen_after": seen_after},
        )

    def test_runs_since(self, since: str) -> int:
        """How many test runs (distinct run ids) ran after ``since``."""
        return int(
            self.scalar(
                "SELECT COUNT(DISTINCT run_id) FROM {test_results} WHERE ran_at > :since",
                {"since": since},
            )
            or 0
        )
