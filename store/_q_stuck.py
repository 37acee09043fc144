"""Queries for stuck-phases: running tasks, phase flow, failures by executor/model."""

from __future__ import annotations

from store._q_base import QueryBase


class StuckQueries(QueryBase):
    """Aggregates in SQL over the as-of relations; small results only."""
