"""Queries for goal progress (Phase 3)."""

from __future__ import annotations

from store._q_base import QueryBase


class GoalQueries(QueryBase):
    """Aggregates in SQL over the as-of relations; small results only."""
