"""Queries for spec-drift: the tasks that implement each spec."""

from __future__ import annotations

from store._q_base import QueryBase


class SpecQueries(QueryBase):
    """Aggregates in SQL over the as-of relations; small results only."""
