"""Store adapters: where the pipeline's backlog and the reviewer's state live.

``open_store(url)`` picks the adapter from the URL scheme (CONTRACT):
``sqlite:///path.db`` (embedded default), ``postgresql://...``,
``http(s)://host/api``.
"""

from __future__ import annotations

from typing import Any

from store._q_goals import goal_link
from store._q_metrics import ARM_COLUMNS, MetricFilter
from store._q_usage import USAGE_DIMENSIONS
from store._schema import METRIC_COLUMNS, SCHEMA_VERSION, TASK_COLUMNS, TEST_RESULT_COLUMNS
from store._view import BacklogView, json_list
from store.base import DaemonLockedError, Row, Store, StoreError
from store.models import (
    ACTIVE_PROPOSAL_STATES,
    Approval,
    Proposal,
    ProposalState,
    ReviewRun,
    Severity,
    Silence,
)
from store.sqlite import SQLiteStore, read_meta
from store.state import InvalidTransition, NotFound, ReviewerState, silence_for


def open_store(url: str, *, workspace: Any = None, mirror_path: str | None = None) -> Store:
    """Open the store a URL names; raises ``StoreError`` with a clear message.

    ``mirror_path`` is the local SQLite file an HTTP store mirrors into.
    """
    if url.startswith("sqlite:///"):
        return SQLiteStore(url[len("sqlite:///") :], workspace=workspace)
    if url.startswith(("postgresql://", "postgres://")):
        from store.postgres import PostgresStore

        return PostgresStore(url, workspace=workspace)
    if url.startswith(("http://", "https://")):
        from store.http import HTTPStore

        return HTTPStore(url, workspace=workspace, mirror_path=mirror_path)
    raise StoreError(
        f"unknown store URL {url!r}; expected sqlite:///path.db, postgresql://user@host/db "
        "or http(s)://host/api"
    )


__all__ = [
    "ACTIVE_PROPOSAL_STATES",
    "ARM_COLUMNS",
    "METRIC_COLUMNS",
    "SCHEMA_VERSION",
    "TASK_COLUMNS",
    "TEST_RESULT_COLUMNS",
    "USAGE_DIMENSIONS",
    "Approval",
    "BacklogView",
    "DaemonLockedError",
    "InvalidTransition",
    "MetricFilter",
    "NotFound",
    "Proposal",
    "ProposalState",
    "ReviewRun",
    "ReviewerState",
    "Row",
    "SQLiteStore",
    "Severity",
    "Silence",
    "Store",
    "StoreError",
    "goal_link",
    "json_list",
    "open_store",
    "read_meta",
    "silence_for",
]
