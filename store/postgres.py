"""The PostgreSQL store: the backlog and the reviewer's state in one database (or schema).

For teams that outgrow one SQLite file. It keeps SQLiteStore's behaviour so the
engine and the rules cannot tell them apart:

- Timestamps stay TEXT in the one fixed form (the SQL layer compares them as
  strings); INTEGER columns become BIGINT and REAL ones DOUBLE PRECISION, so
  rows come back with ``int`` and ``float``; TEXT compares in byte order
  (``COLLATE "C"``) as in SQLite. ``numeric`` results (``SUM`` of integers,
  ``AVG``, ``ROUND``) come back as ``int`` when whole and ``float`` otherwise.
- Every write transaction first takes a transaction-scoped advisory lock, the
  counterpart of SQLite's ``BEGIN IMMEDIATE``: writers of one store queue up
  instead of interleaving (a CLI ``review --once`` beside the daemon). Schema
  migrations run in such a transaction, so two processes starting at once do
  not race. Nested ``transaction()`` calls join the outer one.
- Outside a transaction each statement commits on its own (autocommit).
- Each thread gets its own connection (the daemon's scheduler and the API's
  workers share a store object); a connection that broke is replaced on next use.
- Any number of daemons (replicas) per store: each scheduled cycle is led by
  the one that takes its transaction-level advisory lock (``lead_cycle``),
  held in an open transaction on a connection of its own for the cycle's
  length. The server drops it with the holder's connection or process, and a
  transaction pooler keeps a transaction on one server connection, so it
  holds through poolers too (a session lock would not).

A store is a database plus its first ``search_path`` schema; pick a schema
with ``?options=-csearch_path%3Dname`` in the URL. Locks are per schema.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import islice
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.adapt import Buffer, Loader
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from store._common import SQLStoreCommon
from store._dialect import POSTGRESQL
from store._schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    TASK_COLUMNS,
)
from store._view import BacklogView
from store.base import CycleLease, Row, StoreError

CONNECT_TIMEOUT_S = 10
_BATCH = 10_000
_JSON_TYPES = (list, dict)

PgConnection = psycopg.Connection[Row]


class _NumericLoader(Loader):
    """Loads ``numeric`` as ``int`` when whole and ``float`` otherwise, like SQLite."""

    def load(self, data: Buffer) -> int | float:
        text = bytes(data)
        if text.lstrip(b"-").isdigit():
            return int(text)
        return float(text)


class PostgresStore(SQLStoreCommon):
    """A backlog store in a PostgreSQL database (or one schema of it)."""

    dialect = POSTGRESQL

    def __init__(self, url: str, *, workspace: Any = None):
        self.url = url
        self.workspace = workspace
        self._where = redact(url)
        self._local = threading.local()
        self._all: list[PgConnection] = []
        self._all_lock = threading.Lock()
        self._lease_conn: PgConnection | None = None
        try:
            self._conninfo = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise StoreError(f"bad PostgreSQL store URL {self._where}: {exc}") from exc
        row = self._one("SELECT current_schema() AS schema, current_setting('search_path') AS sp")
        if row is None or row["schema"] is None:
            raise StoreError(
                f"store {self._where}: none of the schemas on search_path "
                f"({row['sp'] if row else '?'}) exists; create the schema first "
                "(CREATE SCHEMA name) or fix the URL's options=-csearch_path"
            )
        self.schema: str = row["schema"]
        self._write_key = _lock_key("write", self.schema)
        self.migrate()

    # -- connections --------------------------------------------------------
    def _connect(self, application_name: str = "reviewer") -> PgConnection:
        options: dict[str, Any] = {}
        if "application_name" not in self._conninfo:
            options["application_name"] = application_name
        if "connect_timeout" not in self._conninfo:
            options["connect_timeout"] = CONNECT_TIMEOUT_S
        try:
            conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row, **options)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open PostgreSQL store {self._where}: {exc}") from exc
        conn.adapters.register_loader("numeric", _NumericLoader)
        with self._all_lock:
            self._all.append(conn)
        return conn

    @property
    def conn(self) -> PgConnection:
        """This thread's connection, opened (or reopened, if it broke) on first use."""
        conn: PgConnection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            if conn is not None:
                self._forget(conn)
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _forget(self, conn: PgConnection) -> None:
        with self._all_lock:
            if conn in self._all:
                self._all.remove(conn)

    def close(self) -> None:
        self.release_daemon_lock()
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction holding the store's write lock from its first statement."""
        conn = self.conn
        if conn.info.transaction_status != TransactionStatus.IDLE:
            # Nested: the outer transaction already holds the lock.
            yield
            return
        try:
            with conn.transaction():
                if not getattr(self._local, "dry_run", False):
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._write_key,))
                yield
        except psycopg.errors.IntegrityError:
            raise
        except psycopg.Error as exc:
            raise StoreError(f"transaction failed on {self._where}: {exc}") from exc

    @contextmanager
    def dry_run_copy(self) -> Iterator[PostgresStore]:
        """This store, with this thread's transactions skipping the write lock: a dry
        run's transaction is rolled back, so it needs no lock against writers."""
        self._local.dry_run = True
        try:
            yield self
        finally:
            self._local.dry_run = False

    # -- schema -------------------------------------------------------------
    def schema_version(self) -> int:
        """The number of migrations this store has run (0 for an empty schema)."""
        found = self._one("SELECT to_regclass('reviewer_meta') AS t")
        if found is None or found["t"] is None:
            return 0
        row = self._one("SELECT value FROM reviewer_meta WHERE key = 'schema_version'")
        return int(row["value"]) if row else 0

    def _check_not_newer(self, current: int) -> None:
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"store {self._where} (schema {self.schema}) has schema version {current}, "
                f"newer than this reviewer understands ({SCHEMA_VERSION}); upgrade reviewer"
            )

    def migrate(self) -> None:
        """Bring the schema forward to ``SCHEMA_VERSION``, one migration at a time.

        The version is read first, without a lock: a store that is up to date
        opens without waiting for (or blocking) a writer. Only when a migration
        is due is the write lock taken, and the version read again under it, in
        case another process migrated meanwhile.
        """
        current = self.schema_version()
        self._check_not_newer(current)
        if current == SCHEMA_VERSION:
            return
        with self.transaction():
            conn = self.conn
            conn.execute(
                POSTGRESQL.ddl(
                    "CREATE TABLE IF NOT EXISTS reviewer_meta (key TEXT PRIMARY KEY, value TEXT)"
                )
            )
            current = self.schema_version()
            self._check_not_newer(current)
            for version in range(current, SCHEMA_VERSION):
                for statement in MIGRATIONS[version]:
                    ddl = POSTGRESQL.ddl(statement)
                    if not ddl:
                        continue
                    try:
                        conn.execute(ddl)
                    except psycopg.Error as exc:
                        raise StoreError(
                            f"migration {version + 1} failed on {self._where}: {exc}\n{statement}"
                        ) from exc
                conn.execute(
                    "INSERT INTO reviewer_meta (key, value) VALUES ('schema_version', %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(version + 1),),
                )

    # -- reading ------------------------------------------------------------
    def _cursor(self, sql: str, params: dict[str, Any] | None) -> psycopg.Cursor[Row]:
        try:
            # Always a dict, even empty: psycopg then reads the %% the translation wrote.
            return self.conn.execute(POSTGRESQL.params(sql), params or {})
        except psycopg.errors.IntegrityError:
            raise
        except psycopg.Error as exc:
            raise StoreError(f"query failed on {self._where}: {exc}\n{sql}") from exc

    def _one(self, sql: str) -> Row | None:
        return self._cursor(sql, None).fetchone()

    def _fetch(self, sql: str, params: dict[str, Any]) -> Iterator[Row]:
        cursor = self._cursor(sql, params)
        if cursor.description is None:  # a write without RETURNING
            return
        # A client-side cursor: the rows are already here, so the caller may run
        # other queries on this connection while it iterates.
        yield from cursor

    def view(self, now: datetime) -> BacklogView:
        return BacklogView(self._fetch, POSTGRESQL, now, workspace=self.workspace)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        """Rows of a query (or of a write's ``RETURNING``), as dicts."""
        return list(self._fetch(sql, params or {}))

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        """Run one write statement; returns its ``RETURNING`` value, else 0.

        PostgreSQL has no lastrowid: write ``INSERT ... RETURNING id`` (through
        ``query()`` or here) when the new id is needed.
        """
        cursor = self._cursor(sql, params)
        if cursor.description is None:
            return 0
        row = cursor.fetchone()
        value = next(iter(row.values()), 0) if row else 0
        return int(value) if isinstance(value, int) else 0

    # -- backlog writes -----------------------------------------------------
    def _upsert(
        self, table: str, columns: Sequence[str], pk: tuple[str, ...], records: Iterable[Row]
    ) -> int:
        """Insert or replace records by primary key, streamed through COPY in batches.

        Each batch is copied into a session temp table, then merged with one
        ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``; within a batch the last
        record of a key wins, as it would row by row. Unchanged rows are not
        rewritten, so re-ingesting a file leaves no dead tuples behind.
        """
        stage = pgsql.Identifier(f"reviewer_stage_{table}")
        target = pgsql.Identifier(table)
        cols = pgsql.SQL(", ").join(map(pgsql.Identifier, columns))
        keys = pgsql.SQL(", ").join(map(pgsql.Identifier, pk))
        rest = [c for c in columns if c not in pk]
        updates = pgsql.SQL(", ").join(
            pgsql.SQL("{c} = EXCLUDED.{c}").format(c=pgsql.Identifier(c)) for c in rest
        )
        changed = pgsql.SQL("({old}) IS DISTINCT FROM ({new})").format(
            old=pgsql.SQL(", ").join(pgsql.Identifier(table, c) for c in rest),
            new=pgsql.SQL(", ").join(pgsql.Identifier("excluded", c) for c in rest),
        )
        create = pgsql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS"
            " SELECT 0::bigint AS reviewer_seq, {cols} FROM {target} WITH NO DATA"
        ).format(stage=stage, cols=cols, target=target)
        copy = pgsql.SQL("COPY {stage} (reviewer_seq, {cols}) FROM STDIN").format(
            stage=stage, cols=cols
        )
        merge = pgsql.SQL(
            "INSERT INTO {target} ({cols})"
            " SELECT DISTINCT ON ({keys}) {cols} FROM {stage} ORDER BY {keys}, reviewer_seq DESC"
            " ON CONFLICT ({keys}) DO UPDATE SET {updates} WHERE {changed}"
        ).format(target=target, cols=cols, keys=keys, stage=stage, updates=updates, changed=changed)
        rows = (_project(columns, record) for record in records)
        n = 0
        with self.transaction():
            conn = self.conn
            try:
                conn.execute(create)
                while batch := list(islice(rows, _BATCH)):
                    conn.execute(pgsql.SQL("TRUNCATE {stage}").format(stage=stage))
                    with conn.cursor() as cur, cur.copy(copy) as sink:
                        for seq, row in enumerate(batch):
                            sink.write_row((seq, *row))
                    conn.execute(merge)
                    n += len(batch)
            except psycopg.Error as exc:
                raise StoreError(
                    f"writing {table} failed on {self._where} (batch after {n} records): {exc}"
                ) from exc
        return n

    def insert_task_once(self, record: Row) -> bool:
        """Insert a task unless its id exists; True when this call inserted it."""
        cols = ", ".join(TASK_COLUMNS)
        marks = ", ".join(f":{c}" for c in TASK_COLUMNS)
        cursor = self._cursor(
            f"INSERT INTO tasks ({cols}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING",
            dict(zip(TASK_COLUMNS, _project(TASK_COLUMNS, record), strict=True)),
        )
        return cursor.rowcount == 1

    # -- replicas: one leader per scheduled cycle -----------------------------
    def acquire_daemon_lock(self) -> None:
        """Nothing to take: daemons of a PostgreSQL store are replicas (``lead_cycle``)."""

    def release_daemon_lock(self) -> None:
        if self._lease_conn is not None:
            self._lease_conn.close()
            self._forget(self._lease_conn)
            self._lease_conn = None

    def _lease_connection(self) -> PgConnection:
        conn = self._lease_conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                self._forget(conn)
            me = f"reviewer replica pid {os.getpid()} on {socket.gethostname()}"[:63]
            conn = self._connect(application_name=me)
            conn.autocommit = False  # the lock lives as long as the open transaction
            self._lease_conn = conn
        return conn

    def lead_cycle(self, tick: str) -> CycleLease | None:
        """Take the lock of the cycle of ``tick``, or None while another replica holds it.

        ``pg_try_advisory_xact_lock`` in a transaction left open on this store's
        lease connection until ``release()``; the cycle's own reads and writes go
        through the other connections as usual.
        """
        conn = self._lease_connection()
        try:
            row = conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s) AS ok",
                (_lock_key(f"cycle:{tick}", self.schema),),
            ).fetchone()
        except psycopg.Error as exc:
            self.release_daemon_lock()
            raise StoreError(f"cannot take the cycle lock on {self._where}: {exc}") from exc
        if row is None or not row["ok"]:
            conn.rollback()
            return None
        return _Lease(conn, tick)

    def cycle_is_led(self, tick: str) -> bool:
        # Read from pg_locks, not by trying the lock: a try on the lease connection would
        # join (and on release end) the transaction that holds this replica's own lease.
        key = _lock_key(f"cycle:{tick}", self.schema) & 0xFFFFFFFFFFFFFFFF
        row = self._one_p(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND objsubid = 1 AND classid::bigint = %s AND objid::bigint = %s) AS held",
            (key >> 32, key & 0xFFFFFFFF),
        )
        return bool(row and row["held"])

    def _one_p(self, sql: str, params: tuple[Any, ...]) -> Row | None:
        try:
            return self.conn.execute(sql, params).fetchone()
        except psycopg.Error as exc:
            raise StoreError(f"query failed on {self._where}: {exc}") from exc


class _Lease:
    """A held cycle lock: an open transaction on the lease connection."""

    def __init__(self, conn: PgConnection, tick: str):
        self.conn = conn
        self.tick = tick
        self._lock = threading.Lock()

    def alive(self) -> bool:
        with self._lock:
            try:
                self.conn.execute("SELECT 1")
            except psycopg.Error:
                return False
            return True

    def release(self) -> None:
        with self._lock:
            try:
                self.conn.rollback()  # ends the transaction, and with it the lock
            except psycopg.Error:
                self.conn.close()  # gone already: the server dropped the lock with it


def _project(columns: Sequence[str], record: Row) -> tuple[Any, ...]:
    """A record's values in column order; lists and objects as JSON text, as sqlite-utils does."""
    values = [record.get(c) for c in columns]
    if any(isinstance(v, _JSON_TYPES) for v in values):
        values = [json.dumps(v) if isinstance(v, _JSON_TYPES) else v for v in values]
    return tuple(values)


def _lock_key(purpose: str, schema: str) -> int:
    """A stable signed 64-bit advisory lock key for one purpose in one schema."""
    digest = hashlib.blake2b(f"reviewer:{purpose}:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def redact(url: str) -> str:
    """A store URL without its password, for messages and logs (``store.secrets.redact``)."""
    from store.secrets import redact as _redact

    return _redact(url)
