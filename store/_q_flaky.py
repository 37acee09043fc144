"""Queries for flaky-tests: per-test outcome histories from JUnit runs."""

from __future__ import annotations

from store._q_base import QueryBase


class FlakyQueries(QueryBase):
    """Aggregates in SQL over the as-of relations; small results only."""
