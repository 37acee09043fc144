"""Queries for review-audit: review decisions, the tests of their commits, impl file lists."""

from __future__ import annotations

from collections.abc import Sequence

from store._q_base import QueryBase, Row
from store._q_specs import _FINISHED, _in_list

# The fields a review task records its decision in (kept in ``extra``), each with
# the column it is read into (COMMIT is an SQL keyword).
REVIEW_FIELDS = {
    "review_decision": "review_decision",
    "review_rationale": "review_rationale",
    "commit": "review_commit",
}


class ReviewQueries(QueryBase):
    """Completed reviews and what they judged; small, windowed results."""

    def _review_columns(self) -> str:
        d = self.dialect
        return ", ".join(f"{d.json_text('extra', f)} AS {a}" for f, a in REVIEW_FIELDS.items())

    def completed_reviews(self, task_types: Sequence[str], since: str) -> list[Row]:
        """Completed tasks of ``task_types`` that finished after ``since``, with their decision.

        Columns: ``id``, ``title``, ``finished_at``, ``source``, ``review_decision``,
        ``review_rationale``, ``review_commit`` (the last three from ``extra``), oldest first.
        """
        types, params = _in_list("ty", task_types)
        return self.rows(
            f"""SELECT id, title, {_FINISHED} AS finished_at, source, {self._review_columns()}
                FROM {{tasks}} t
                WHERE state = 'completed' AND task_type IN {types} AND {_FINISHED} > :since
                ORDER BY {_FINISHED}, id""",
            {**params, "since": since},
        )

    def commit_test_status(self, commits: Sequence[str]) -> dict[str, Row]:
        """For each commit, its tests and how many failed at their latest run on that commit.

        A test rerun on the commit counts by its last result. Columns: ``commit_sha``,
        ``tests``, ``failed``, ``first_failed`` (a failing test id), ``last_ran``.
        """
        out: dict[str, Row] = {}
        unique = sorted(set(commits))
        for start in range(0, len(unique), 500):
            marks, params = _in_list("c", unique[start : start + 500])
            for row in self.rows(
                f"""SELECT r.commit_sha, COUNT(*) AS tests,
                           SUM(CASE WHEN r.outcome IN ('failed', 'error') THEN 1 ELSE 0 END)
                               AS failed,
                           MIN(CASE WHEN r.outcome IN ('failed', 'error') THEN r.test_id END)
                               AS first_failed,
                           MAX(r.ran_at) AS last_ran
                    FROM {{test_results}} r
                    JOIN (SELECT commit_sha, test_id, MAX(ran_at) AS at FROM {{test_results}}
                          WHERE commit_sha IN {marks} GROUP BY commit_sha, test_id) l
                      ON l.commit_sha = r.commit_sha AND l.test_id = r.test_id AND l.at = r.ran_at
                    GROUP BY r.commit_sha""",
                params,
            ):
                out[row["commit_sha"]] = row
        return out

    def completed_impl_with_spec(self, impl_types: Sequence[str], since: str) -> list[Row]:
        """Completed impl tasks that name a spec and finished after ``since``, oldest first.

        Columns: ``id``, ``title``, ``spec``, ``finished_at``, ``files_changed`` (JSON text).
        """
        types, params = _in_list("ty", impl_types)
        return self.rows(
            f"""SELECT id, title, spec, {_FINISHED} AS finished_at, files_changed
                FROM {{tasks}} t
                WHERE state = 'completed' AND task_type IN {types}
                  AND spec IS NOT NULL AND spec <> '' AND {_FINISHED} > :since
                ORDER BY {_FINISHED}, id""",
            {**params, "since": since},
        )
