"""Queries for usage-spikes: tokens and cost per task, per scope and hour."""

from __future__ import annotations

from store._q_base import QueryBase


class UsageQueries(QueryBase):
    """Aggregates in SQL over the as-of relations; small results only."""
