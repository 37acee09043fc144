"""Copying a whole store into another: ``reviewer migrate --from URL --to URL``.

Every table the two stores share is copied (the backlog and the reviewer's
own state, whatever migrations added), streamed in batches: a server-side
cursor on PostgreSQL, a plain cursor on SQLite; rows go in with ``COPY`` on
PostgreSQL and ``executemany`` on SQLite, one transaction per table (an
interrupted copy leaves whole tables; run it again with ``replace``). Both
stores are opened at the current schema first, so their tables match.

The check at the end reads each target table again and compares its row
count and a checksum with what was read from the source. The checksum is a
sum (mod 2**64) of one 64-bit hash per row, so it does not depend on row order
(SQLite and PostgreSQL sort text differently) and counts duplicates.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from store.base import Store, StoreError

# reviewer_meta's schema_version is the target's own (both are at the current schema).
_SKIP_META_KEYS = ("schema_version",)
_MASK = (1 << 64) - 1

Progress = Callable[[str, int, int], None]  # (table, rows done, rows in all)


@dataclass
class TableCopy:
    """What one table's copy read, wrote and found on checking."""

    table: str
    source_rows: int = 0
    source_sum: int = 0
    target_rows: int = 0
    target_sum: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.source_sum == self.target_sum

    def public(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "source_rows": self.source_rows,
            "target_rows": self.target_rows,
            "source_checksum": f"{self.source_sum:016x}",
            "target_checksum": f"{self.target_sum:016x}",
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
        }


def _canon(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return f"s{len(value)}:{value}"  # the length keeps a separator inside a text harmless
    if value is None:
        return "-"
    if kind is int or kind is bool:
        return f"n{int(value)}"
    if kind is float:
        # SQLite keeps 5 in a REAL column as 5.0, and may keep 5.0 in an INTEGER one.
        return f"n{int(value)}" if value.is_integer() else f"n{value!r}"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"b{bytes(value).hex()}"
    return _canon(str(value))


def row_hash(row: Sequence[Any]) -> int:
    """A 64-bit hash of one row's values, equal for equal values on either database."""
    text = "\x1f".join(map(_canon, row)).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


class _Side:
    """One store as the copy sees it: its tables, a row stream, a bulk append."""

    def __init__(self, store: Store):
        self.store = store

    @staticmethod
    def open(store: Store) -> _Side:
        name = store.dialect.name  # type: ignore[attr-defined]
        if name == "sqlite":
            return _SQLiteSide(store)
        if name == "postgresql":
            return _PostgresSide(store)
        raise StoreError(f"cannot copy a {name} store")

    def tables(self) -> dict[str, list[str]]:
        raise NotImplementedError

    def rows(
        self, table: str, columns: Sequence[str], batch: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        raise NotImplementedError

    def load(
        self, table: str, columns: Sequence[str], chunks: Iterator[list[tuple[Any, ...]]]
    ) -> None:
        """Append the rows of ``chunks`` to an empty table, in one transaction.

        The table's secondary indexes and triggers are dropped for the load and
        made again from their own definitions at the end (one sorted build, not
        one update per row; the rows are copied as they were, not normalised again).
        """
        raise NotImplementedError

    def count(self, table: str) -> int:
        sql = f"SELECT COUNT(*) AS n FROM {_q(table)}{_meta_filter(table)}"
        return int(self.store.query(sql)[0]["n"])

    def clear(self, table: str) -> None:
        with self.store.transaction():
            self.store.execute(f"DELETE FROM {_q(table)}{_meta_filter(table)}")


class _SQLiteSide(_Side):
    def tables(self) -> dict[str, list[str]]:
        names = [
            r["name"]
            for r in self.store.query(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
            )
        ]
        return {
            t: [c["name"] for c in self.store.query(f"PRAGMA table_info({_q(t)})")] for t in names
        }

    def rows(
        self, table: str, columns: Sequence[str], batch: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        conn: sqlite3.Connection = self.store.conn  # type: ignore[attr-defined]
        cur = conn.cursor()
        cur.row_factory = None  # plain tuples
        try:
            cur.execute(f"SELECT {_cols(columns)} FROM {_q(table)}{_meta_filter(table)}")
            while chunk := cur.fetchmany(batch):
                yield chunk
        finally:
            cur.close()

    def load(
        self, table: str, columns: Sequence[str], chunks: Iterator[list[tuple[Any, ...]]]
    ) -> None:
        conn: sqlite3.Connection = self.store.conn  # type: ignore[attr-defined]
        insert = (
            f"INSERT INTO {_q(table)} ({_cols(columns)}) VALUES ({', '.join('?' * len(columns))})"
        )
        with self.store.transaction():
            extras = conn.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = ?"
                " AND type IN ('index', 'trigger') AND sql IS NOT NULL",
                (table,),
            ).fetchall()
            for kind, name, _ in extras:
                conn.execute(f"DROP {kind.upper()} {_q(name)}")
            for chunk in chunks:
                conn.executemany(insert, chunk)
            for _, _, sql in extras:
                conn.execute(sql)


class _PostgresSide(_Side):
    def tables(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for r in self.store.query(
            "SELECT c.table_name AS t, c.column_name AS c FROM information_schema.columns c"
            " JOIN information_schema.tables t ON t.table_schema = c.table_schema"
            "  AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'"
            " WHERE c.table_schema = current_schema() ORDER BY c.table_name, c.ordinal_position"
        ):
            found.setdefault(r["t"], []).append(r["c"])
        return found

    def rows(
        self, table: str, columns: Sequence[str], batch: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        from psycopg.rows import tuple_row

        conn = self.store.conn  # type: ignore[attr-defined]
        # A named (server-side) cursor: the server keeps the result, we fetch a batch at a time.
        with (
            conn.transaction(),
            conn.cursor(name=f"reviewer_copy_{table}", row_factory=tuple_row) as cur,
        ):
            cur.itersize = batch
            cur.execute(f"SELECT {_cols(columns)} FROM {_q(table)}{_meta_filter(table)}")
            while chunk := cur.fetchmany(batch):
                yield chunk

    def load(
        self, table: str, columns: Sequence[str], chunks: Iterator[list[tuple[Any, ...]]]
    ) -> None:
        conn = self.store.conn  # type: ignore[attr-defined]
        copy = f"COPY {_q(table)} ({_cols(columns)}) FROM STDIN"
        with self.store.transaction():
            # Indexes that back no constraint (the primary key stays, and checks the rows).
            indexes = self.store.query(
                "SELECT i.indexname AS name, i.indexdef AS sql FROM pg_indexes i"
                " WHERE i.schemaname = current_schema() AND i.tablename = :t AND NOT EXISTS"
                " (SELECT 1 FROM pg_constraint c WHERE c.conindid ="
                "  (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)",
                {"t": table},
            )
            for ix in indexes:
                conn.execute(f"DROP INDEX {_q(ix['name'])}")
            conn.execute(f"ALTER TABLE {_q(table)} DISABLE TRIGGER USER")
            for chunk in chunks:
                with conn.cursor() as cur, cur.copy(copy) as sink:
                    for row in chunk:
                        sink.write_row(row)
            conn.execute(f"ALTER TABLE {_q(table)} ENABLE TRIGGER USER")
            for ix in indexes:
                conn.execute(ix["sql"])
            # Ids go on after the copied ones.
            for s in self.store.query(
                "SELECT column_name AS c FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = :t"
                " AND column_default LIKE 'nextval(%'",
                {"t": table},
            ):
                self.store.query(
                    f"SELECT setval(pg_get_serial_sequence(:t, :c),"
                    f" COALESCE(MAX({_q(s['c'])}), 0) + 1, false) FROM {_q(table)}",
                    {"t": table, "c": s["c"]},
                )


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cols(columns: Sequence[str]) -> str:
    return ", ".join(_q(c) for c in columns)


def _meta_filter(table: str) -> str:
    if table != "reviewer_meta":
        return ""
    keys = ", ".join(f"'{k}'" for k in _SKIP_META_KEYS)
    return f" WHERE key NOT IN ({keys})"


def plan(source: Store, target: Store) -> list[tuple[str, list[str]]]:
    """The tables to copy, with the columns both sides have, in name order."""
    src, dst = _Side.open(source).tables(), _Side.open(target).tables()
    missing = sorted(set(src) - set(dst))
    if missing:
        raise StoreError(
            f"the target has no table {', '.join(missing)}; are both stores at the same "
            "reviewer version?"
        )
    out = []
    for table, columns in src.items():
        lacking = [c for c in columns if c not in dst[table]]
        if lacking:
            raise StoreError(f"the target's {table} has no column {', '.join(lacking)}")
        out.append((table, columns))
    return out


def non_empty(target: Store) -> dict[str, int]:
    """The target's tables that hold rows (reviewer_meta's schema_version aside)."""
    side = _Side.open(target)
    counts = {table: side.count(table) for table in side.tables()}
    return {table: n for table, n in counts.items() if n}


def copy_store(
    source: Store,
    target: Store,
    *,
    batch: int = 5000,
    replace: bool = False,
    progress: Progress | None = None,
) -> list[TableCopy]:
    """Copy every table of ``source`` into ``target`` and check each; see the module doc.

    Refuses a target that holds rows unless ``replace``, which empties its tables first.
    """
    import time

    tables = plan(source, target)
    src, dst = _Side.open(source), _Side.open(target)
    held = non_empty(target)
    if held and not replace:
        listed = ", ".join(f"{t} ({n} rows)" for t, n in sorted(held.items()))
        raise StoreError(
            f"the target is not empty: {listed}; copy into an empty store, "
            "or pass --replace to delete these rows first"
        )
    if held:
        for table in held:
            dst.clear(table)
    reports: list[TableCopy] = []
    for table, columns in tables:
        report = TableCopy(table)
        started = time.monotonic()
        total = src.count(table)
        if progress:
            progress(table, 0, total)

        dst.load(table, columns, _hashed(src, columns, batch, report, total, progress))
        for chunk in dst.rows(table, columns, batch):
            report.target_rows += len(chunk)
            report.target_sum = (report.target_sum + sum(map(row_hash, chunk))) & _MASK
        report.seconds = time.monotonic() - started
        reports.append(report)
    return reports


def _hashed(
    src: _Side,
    columns: Sequence[str],
    batch: int,
    report: TableCopy,
    total: int,
    progress: Progress | None,
) -> Iterator[list[tuple[Any, ...]]]:
    """The source's rows of ``report.table`` in batches, counted and hashed as they pass."""
    for chunk in src.rows(report.table, columns, batch):
        yield chunk
        report.source_rows += len(chunk)
        report.source_sum = (report.source_sum + sum(map(row_hash, chunk))) & _MASK
        if progress:
            progress(report.table, report.source_rows, max(total, report.source_rows))


__all__ = ["TableCopy", "copy_store", "non_empty", "plan", "row_hash"]
