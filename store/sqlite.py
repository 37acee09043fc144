"""The embedded store: one SQLite file holding the backlog and the reviewer's state.

WAL so readers never block the writer, a busy timeout so writers wait for each
other instead of failing, and ``BEGIN IMMEDIATE`` for every write transaction:
a deferred ``BEGIN`` (what sqlite-utils' ``atomic()`` opens) takes the write
lock only at the first write, and under a concurrent writer that upgrade fails
with SQLITE_BUSY without waiting. sqlite-utils' table helpers run inside our
transaction as savepoints.

Each thread gets its own connection (the daemon's scheduler and the API's
workers share a store object).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from store._common import SQLStoreCommon
from store._dialect import SQLITE
from store._schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    TASK_COLUMNS,
)
from store._view import BacklogView
from store.base import DaemonLockedError, Row, StoreError, StoreLockedError

if TYPE_CHECKING:
    import sqlite_utils

BUSY_TIMEOUT_S = 30.0
# Page cache while upserting records (KiB), and SQLite's default to return to after.
_UPSERT_CACHE_KB = 65536
_DEFAULT_CACHE = -2000


def read_meta(db_path: Path, key: str) -> str | None:
    """A ``reviewer_meta`` value of a SQLite file, read without changing it; ``None`` when
    the file is no store (or has no such key)."""
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM reviewer_meta WHERE key = ?", (key,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


class SQLiteStore(SQLStoreCommon):
    """A backlog store in one SQLite file (or in memory, for tests)."""

    dialect = SQLITE

    def __init__(self, path: str | Path, *, workspace: Any = None, create: bool = False):
        self.path = str(path)
        self.memory = self.path == ":memory:"
        self.url = "sqlite://" + ("/:memory:" if self.memory else "/" + self.path)
        self.workspace = workspace
        if not self.memory:
            parent = Path(self.path).parent
            if not parent.exists():
                if not create:
                    raise StoreError(
                        f"store {self.path}: folder {parent} does not exist; create it, "
                        "or point [reviewer] store at an existing folder"
                    )
                parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._shared: sqlite3.Connection | None = None
        self._lock_file: IO[bytes] | None = None
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        if not self.memory:
            # Owner-only: SQLite gives the -wal and -shm files the database file's mode.
            _private(self.path)
        self.migrate()

    # -- connections --------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,  # we open transactions ourselves
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if not self.memory:
            self._ensure_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _ensure_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL (once: the mode is stored in the file).

        The switch needs the file to itself, and SQLite answers "database is
        locked" at once, without waiting on the busy timeout, when another
        connection is opening the same new file; so retry for a while.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        delay = 0.005
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode.lower() != "wal":
                    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise StoreError(f"store {self.path}: cannot switch to WAL: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
                continue
            if mode.lower() != "wal":
                raise StoreError(f"store {self.path}: could not switch to WAL (got {mode})")
            return

    @property
    def conn(self) -> sqlite3.Connection:
        if self.memory:
            # One in-memory database is one connection; tests use it from one thread.
            if self._shared is None:
                self._shared = self._connect()
            return self._shared
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        db: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if db is None or db.conn is not self.conn:
            # sqlite_utils imports numpy when it can: loaded here, for writes, so a
            # command that only reads starts without it.
            import sqlite_utils

            db = sqlite_utils.Database(self.conn, recursive_triggers=False)
            self._local.db = db
        return db

    def close(self) -> None:
        self.release_daemon_lock()
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._shared = None
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction holding the write lock from its first statement."""
        conn = self.conn
        if conn.in_transaction:
            # Nested: the outer transaction already holds the lock.
            yield
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if _is_locked(exc):
                raise self._locked(exc) from exc
            raise

    @contextmanager
    def dry_run_copy(self) -> Iterator[SQLiteStore]:
        """A throwaway copy of this store for a dry run, so it needs no write lock.

        SQLite's online backup reads the file in one read transaction (WAL: a
        writer holding the lock does not block it) into a private temporary file,
        deleted afterwards; the dry run writes and rolls back there. An in-memory
        store is its own: no other process can hold its lock.
        """
        if self.memory:
            yield self
            return
        with tempfile.TemporaryDirectory(prefix="reviewer-dry-run-") as tmp:
            path = os.path.join(tmp, "store.db")
            _private(path)
            dest = sqlite3.connect(path)
            try:
                self.conn.backup(dest)
            except sqlite3.OperationalError as exc:
                if _is_locked(exc):
                    raise self._locked(exc) from exc
                raise StoreError(f"store {self.path}: cannot copy it for a dry run: {exc}") from exc
            finally:
                dest.close()
            copy = SQLiteStore(path, workspace=self.workspace)
            try:
                yield copy
            finally:
                copy.close()

    def _locked(self, exc: BaseException) -> StoreLockedError:
        return StoreLockedError(
            f"store {self.path} is locked: another process has held its write lock for over "
            f"{BUSY_TIMEOUT_S:g} s (a long ingest, or a pipeline's open transaction). "
            "Nothing was written; run the command again once that writer has finished "
            f"({exc})"
        )

    # -- schema -------------------------------------------------------------
    def schema_version(self) -> int:
        conn = self.conn
        conn.execute("CREATE TABLE IF NOT EXISTS reviewer_meta (key TEXT PRIMARY KEY, value TEXT)")
        row = conn.execute(
            "SELECT value FROM reviewer_meta WHERE key = 'schema_version'"
        ).fetchone()
        return int(row[0]) if row else 0

    def _read_version(self) -> int:
        """The schema version, read without writing (0 for a new file)."""
        conn = self.conn
        try:
            known = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'reviewer_meta'"
            ).fetchone()
            if not known:
                return 0
            row = conn.execute(
                "SELECT value FROM reviewer_meta WHERE key = 'schema_version'"
            ).fetchone()
        except sqlite3.OperationalError as exc:
            if _is_locked(exc):
                raise self._locked(exc) from exc
            raise StoreError(f"cannot read store {self.path}: {exc}") from exc
        return int(row[0]) if row else 0

    def _check_version(self, current: int) -> None:
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {current}, newer than this reviewer "
                f"understands ({SCHEMA_VERSION}); upgrade reviewer"
            )

    def migrate(self) -> None:
        """Bring the schema forward to ``SCHEMA_VERSION``, one migration at a time.

        An up-to-date store is only read: opening one never takes the write lock,
        so a long write elsewhere does not stop read-only commands.
        """
        current = self._read_version()
        self._check_version(current)
        if current == SCHEMA_VERSION:
            return
        with self.transaction():
            current = self.schema_version()
            self._check_version(current)
            for version in range(current, SCHEMA_VERSION):
                for statement in MIGRATIONS[version]:
                    ddl = SQLITE.ddl(statement)
                    if ddl:
                        self.conn.execute(ddl)
                self.conn.execute(
                    "INSERT INTO reviewer_meta (key, value) VALUES ('schema_version', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(version + 1),),
                )

    # -- reading ------------------------------------------------------------
    def _fetch(self, sql: str, params: dict[str, Any]) -> Iterator[Row]:
        try:
            cursor = self.conn.execute(sql, params)
        except sqlite3.Error as exc:
            if _is_locked(exc):
                raise self._locked(exc) from exc
            raise StoreError(f"query failed on {self.path}: {exc}\n{sql}") from exc
        for row in cursor:
            yield dict(row)

    def view(self, now: datetime) -> BacklogView:
        return BacklogView(self._fetch, SQLITE, now, workspace=self.workspace)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        return list(self._fetch(sql, params or {}))

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        try:
            cursor = self.conn.execute(sql, params or {})
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            if _is_locked(exc):
                raise self._locked(exc) from exc
            raise StoreError(f"write failed on {self.path}: {exc}") from exc
        return int(cursor.lastrowid or 0)

    # -- backlog writes -----------------------------------------------------
    def _upsert(
        self, table: str, columns: Sequence[str], pk: tuple[str, ...], records: Iterable[Row]
    ) -> int:
        """Insert or replace records by primary key, in one transaction.

        The records go by ``executemany`` into a temporary table without indexes
        or triggers, then into ``table`` by one ``INSERT ... SELECT ... ON CONFLICT
        DO UPDATE``: one statement, so SQLite journals each page of the table's
        indexes once per call rather than once per row (a table with a trigger
        makes every statement keep a statement journal). Rows go in file order,
        so the last record of a key wins; an unchanged record is not rewritten,
        so loading a file again costs no index or trigger work.
        """
        stage = f"reviewer_stage_{table}"
        cols = ", ".join(columns)
        rest = [c for c in columns if c not in pk]
        merge = (
            f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM temp.{stage} WHERE true"
            f" ORDER BY rowid ON CONFLICT ({', '.join(pk)}) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in rest)
            + " WHERE "
            + " OR ".join(f"{table}.{c} IS NOT excluded.{c}" for c in rest)
        )
        rows = [_project(columns, record) for record in records]
        if not rows:
            return 0
        conn = self.conn
        try:
            # A load touches index pages all over each index: keep them in memory
            # for the transaction instead of re-reading them (the default is 2 MB).
            conn.execute(f"PRAGMA main.cache_size = -{_UPSERT_CACHE_KB}")
            with self.transaction():
                conn.execute(f"DROP TABLE IF EXISTS temp.{stage}")
                conn.execute(
                    f"CREATE TEMP TABLE {stage} AS SELECT {cols} FROM main.{table} WHERE 0"
                )
                conn.executemany(
                    f"INSERT INTO temp.{stage} VALUES ({', '.join('?' * len(columns))})", rows
                )
                conn.execute(merge)
                conn.execute(f"DROP TABLE temp.{stage}")
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            if _is_locked(exc):
                raise self._locked(exc) from exc
            raise StoreError(f"writing {table} failed on {self.path}: {exc}") from exc
        finally:
            conn.execute(f"PRAGMA main.cache_size = {_DEFAULT_CACHE}")
        return len(rows)

    def insert_task_once(self, record: Row) -> bool:
        cols = ", ".join(TASK_COLUMNS)
        marks = ", ".join(f":{c}" for c in TASK_COLUMNS)
        cursor = self.conn.execute(
            f"INSERT INTO tasks ({cols}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING",
            {c: record.get(c) for c in TASK_COLUMNS},
        )
        return cursor.rowcount == 1

    # -- one daemon per store ----------------------------------------------
    def acquire_daemon_lock(self) -> None:
        """Take the store's daemon lock or raise ``DaemonLockedError``.

        An OS file lock beside the database: the kernel drops it when the
        process dies, so a crashed daemon never leaves a stale lock behind.
        """
        if self.memory or self._lock_file is not None:
            return
        # The lock is taken on the database file itself (flock, which SQLite's own
        # POSIX locks do not touch): it belongs to the file's device and inode, so
        # a symlink or a hard link to the same store meets the same lock. The
        # ".lock" file beside the real path only tells who holds it.
        real = os.path.realpath(self.path)
        db_handle = open(real, "rb")  # noqa: SIM115 - held for the daemon's lifetime
        try:
            fcntl.flock(db_handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            db_handle.close()
            try:
                holder = Path(real + ".lock").read_text().strip() or "another process"
            except OSError:
                holder = "another process"
            raise DaemonLockedError(
                f"another reviewer daemon ({holder}) is already running on {self.path}; "
                "stop it first, or point this one at another store"
            ) from None
        try:
            _private(real + ".lock")
            Path(real + ".lock").write_text(f"pid {os.getpid()}")
        except OSError:
            pass  # who holds it is a courtesy; the lock itself is held
        self._lock_file = db_handle

    def release_daemon_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None


def _private(path: str) -> None:
    """Create ``path`` readable and writable by its owner only (0600), if absent; an
    existing file of ours that others may read (created 0644 by an older reviewer)
    is made 0600, and so are its ``-wal`` and ``-shm`` files."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return
    except FileExistsError:
        pass
    for name in (path, path + "-wal", path + "-shm"):
        with contextlib.suppress(OSError):  # absent, or not ours to change
            st = os.stat(name)
            if st.st_uid == os.getuid() and st.st_mode & 0o077:
                os.chmod(name, 0o600)


def _is_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text


_JSON_TYPES = (list, dict, tuple)


def _project(columns: Sequence[str], record: Row) -> list[Any]:
    """A record's values in column order; lists and objects as JSON text."""
    get = record.get
    values = [get(c) for c in columns]
    for i, v in enumerate(values):
        if isinstance(v, _JSON_TYPES):
            values[i] = json.dumps(v)
    return values
