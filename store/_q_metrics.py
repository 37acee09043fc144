"""Queries for pipeline metrics (Phase 1), A/B arms (Phase 2)."""

from __future__ import annotations

from store._q_base import QueryBase


class MetricQueries(QueryBase):
    """Aggregates in SQL over the as-of relations; small results only."""
