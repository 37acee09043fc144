"""Store adapters: where the pipeline's backlog and the reviewer's state live.

``open_store(url)`` picks the adapter from the URL scheme (CONTRACT):
``sqlite:///path.db`` (embedded default), ``postgresql://...``,
``http(s)://host/api``.
"""

from __future__ import annotations

from typing import Any

from store._view import BacklogView, json_list
from store.base import DaemonLockedError, Row, Store, StoreError
from store.sqlite import SQLiteStore


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
    "BacklogView",
    "DaemonLockedError",
    "Row",
    "SQLiteStore",
    "Store",
    "StoreError",
    "json_list",
    "open_store",
]
