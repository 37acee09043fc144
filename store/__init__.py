"""Store adapters: where the pipeline's backlog and the reviewer's state live.

``open_store(url)`` picks the adapter from the URL scheme (CONTRACT):
``sqlite:///path.db`` (embedded default), ``postgresql://...``,
``http(s)://host/api``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store._q_goals import goal_link
    from store._q_metrics import ARM_COLUMNS, MetricFilter
    from store._q_usage import USAGE_DIMENSIONS
    from store._schema import (
        COVERAGE_COLUMNS,
        METRIC_COLUMNS,
        SCHEMA_VERSION,
        TASK_COLUMNS,
        TEST_RESULT_COLUMNS,
    )
    from store._view import BacklogView, json_list
    from store.base import DaemonLockedError, Row, Store, StoreError, StoreLockedError
    from store.controls import Control, ControlKind, ControlSpec
    from store.models import (
        ACTIVE_PROPOSAL_STATES,
        Approval,
        Outcome,
        Proposal,
        ProposalState,
        ReviewRun,
        Severity,
        Silence,
    )
    from store.sqlite import SQLiteStore, read_meta
    from store.state import InvalidTransition, NotFound, ReviewerState, silence_for


# Where each public name lives; imported on first use (PEP 562), so that `import store`
# (and `reviewer --help`) does not load SQLite's helpers, pandas and pydantic up front.
_PUBLIC: dict[str, str] = {
    "ACTIVE_PROPOSAL_STATES": "store.models",
    "ARM_COLUMNS": "store._q_metrics",
    "COVERAGE_COLUMNS": "store._schema",
    "Approval": "store.models",
    "BacklogView": "store._view",
    "Control": "store.controls",
    "ControlKind": "store.controls",
    "ControlSpec": "store.controls",
    "DaemonLockedError": "store.base",
    "InvalidTransition": "store.state",
    "METRIC_COLUMNS": "store._schema",
    "MetricFilter": "store._q_metrics",
    "NotFound": "store.state",
    "Outcome": "store.models",
    "Proposal": "store.models",
    "ProposalState": "store.models",
    "ReviewRun": "store.models",
    "ReviewerState": "store.state",
    "Row": "store.base",
    "SCHEMA_VERSION": "store._schema",
    "SQLiteStore": "store.sqlite",
    "Severity": "store.models",
    "Silence": "store.models",
    "Store": "store.base",
    "StoreError": "store.base",
    "StoreLockedError": "store.base",
    "TASK_COLUMNS": "store._schema",
    "TEST_RESULT_COLUMNS": "store._schema",
    "USAGE_DIMENSIONS": "store._q_usage",
    "goal_link": "store._q_goals",
    "json_list": "store._view",
    "read_meta": "store.sqlite",
    "silence_for": "store.state",
}


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'store' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


# The URL schemes open_store opens, and how to write each (config check lists them).
STORE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://", "http://", "https://")
STORE_URL_FORMS = "sqlite:///path.db, postgresql://user@host/db or http(s)://host/api"


def open_store(
    url: str,
    *,
    workspace: Any = None,
    mirror_path: str | None = None,
    http_policy: dict[str, Any] | None = None,
) -> Store:
    """Open the store a URL names; raises ``StoreError`` with a clear message.

    ``mirror_path`` is the local SQLite file an HTTP store mirrors into;
    ``http_policy`` its timeouts and retries (``store._http_client.RetryPolicy``'s fields).
    """
    from store.base import StoreError
    from store.sqlite import SQLiteStore

    if url.startswith("sqlite:///"):
        return SQLiteStore(url[len("sqlite:///") :], workspace=workspace)
    if url.startswith(("postgresql://", "postgres://")):
        from store.postgres import PostgresStore

        return PostgresStore(url, workspace=workspace)
    if url.startswith(("http://", "https://")):
        from store._http_client import RetryPolicy
        from store.http import HTTPStore

        policy = RetryPolicy(**http_policy) if http_policy else None
        return HTTPStore(url, workspace=workspace, mirror_path=mirror_path, policy=policy)
    raise StoreError(f"unknown store URL {url!r}; expected {STORE_URL_FORMS}")


__all__ = [
    "ACTIVE_PROPOSAL_STATES",
    "ARM_COLUMNS",
    "COVERAGE_COLUMNS",
    "METRIC_COLUMNS",
    "SCHEMA_VERSION",
    "STORE_SCHEMES",
    "STORE_URL_FORMS",
    "TASK_COLUMNS",
    "TEST_RESULT_COLUMNS",
    "USAGE_DIMENSIONS",
    "Approval",
    "BacklogView",
    "Control",
    "ControlKind",
    "ControlSpec",
    "DaemonLockedError",
    "InvalidTransition",
    "MetricFilter",
    "NotFound",
    "Outcome",
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
    "StoreLockedError",
    "goal_link",
    "json_list",
    "open_store",
    "read_meta",
    "silence_for",
]
