"""The store protocol: what the engine and the rules ask of a backlog store."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from store._view import BacklogView


class StoreError(Exception):
    """A store could not be opened, read or written; the message says where and why."""


class StoreLockedError(StoreError):
    """Another writer held the store's write lock for longer than the busy timeout."""


class DaemonLockedError(StoreError):
    """Another daemon already reviews this store."""


Row = dict[str, Any]


class Store(Protocol):
    """A backlog store plus the reviewer's own state beside it."""

    url: str

    def close(self) -> None: ...

    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction that takes the write lock up front."""
        ...

    def view(self, now: datetime) -> BacklogView: ...

    def dry_run_copy(self) -> AbstractContextManager[Store]:
        """A store to run a dry-run cycle against, taking no write lock: its writes
        are thrown away (a copy read in one read transaction, or this store with
        transactions that skip the write lock and are rolled back)."""
        ...

    # -- backlog writes (ingest and scheduling) ------------------------------
    def upsert_tasks(self, records: Iterable[Row]) -> int: ...
    def upsert_metrics(self, records: Iterable[Row]) -> int: ...
    def upsert_test_results(self, records: Iterable[Row]) -> int: ...
    def upsert_coverage(self, records: Iterable[Row]) -> int:
        """Store per-file coverage rows (``COVERAGE_COLUMNS``); upserts by commit and file."""
        ...

    def insert_task_once(self, record: Row) -> bool:
        """Insert a task unless its id exists; True when this call inserted it."""
        ...

    def get_task(self, task_id: str) -> Row | None: ...
    def touch_task_labels(self, task_id: str, add_labels: Sequence[str], at: str) -> None: ...
    def set_task_priority(self, task_id: str, priority: str, at: str) -> str | None:
        """Change a task's priority; the one it had, or None when the store has no such
        task or cannot change one (the engine then files a task to do it)."""
        ...

    # -- reviewer state ------------------------------------------------------
    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        """Run one write statement against the reviewer's tables; returns lastrowid."""
        ...

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]: ...
    def acquire_daemon_lock(self) -> None: ...
    def release_daemon_lock(self) -> None: ...


class CycleLease(Protocol):
    """The right to run one scheduled cycle, held until ``release()``."""

    tick: str

    def alive(self) -> bool:
        """Whether the lock is still held (False once its connection is gone)."""
        ...

    def release(self) -> None: ...


@runtime_checkable
class SupportsReplicas(Protocol):
    """A store several daemons may share; each scheduled cycle has one leader."""

    def lead_cycle(self, tick: str) -> CycleLease | None:
        """The lease of the cycle of ``tick``, or None while another process holds it."""
        ...

    def cycle_is_led(self, tick: str) -> bool:
        """Whether a live process holds the lease of ``tick`` now."""
        ...
