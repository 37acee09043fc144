"""The few SQL differences between SQLite and PostgreSQL, in one place.

Store code writes SQL once, with ``:name`` parameters and the helpers below;
each adapter translates it for its database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# One SQL token that matters for rewriting parameters: a quoted literal or identifier
# (left alone, so ':MI' in a to_char format or a ':' in a label is not a parameter),
# a ``:name`` parameter, or a bare percent sign (psycopg's own placeholder marker).
_PG_PARAM_TOKEN = re.compile(
    r"(?P<quoted>'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")"
    r"|(?<![:\w]):(?P<name>[A-Za-z_]\w*)"
    r"|(?P<percent>%)"
)
_LEADING_WITH = re.compile(r"^\s*WITH(\s+RECURSIVE)?\s", re.IGNORECASE)


def _pg_param_token(match: re.Match[str]) -> str:
    if match.group("quoted") is not None:
        # psycopg scans the whole statement for placeholders, literals included.
        return match.group("quoted").replace("%", "%%")
    if match.group("name") is not None:
        return f"%({match.group('name')})s"
    return "%%"


class _UsedRelations(dict[str, str]):
    """Maps ``{relation}`` placeholders to CTE names and remembers which were used."""

    def __init__(self, names: Mapping[str, str]):
        super().__init__(names)
        self.used: list[str] = []

    def __getitem__(self, key: str) -> str:
        value = super().__getitem__(key)
        if key not in self.used:
            self.used.append(key)
        return value


@dataclass(frozen=True)
class Dialect:
    name: str

    def params(self, sql: str) -> str:
        """Rewrite ``:name`` parameters into the driver's style."""
        if self.name == "postgresql":
            return _PG_PARAM_TOKEN.sub(_pg_param_token, sql)
        return sql

    def bind_relations(self, sql: str, relations: Mapping[str, str]) -> str:
        """Fill ``{tasks}``-style placeholders of ``sql`` with the as-of relations.

        SQLite takes each relation inline as a subquery. PostgreSQL 15 rejects a
        subquery in FROM without an alias, and queries write both ``FROM {tasks}``
        and ``FROM {tasks} t``; so there each used relation becomes a
        ``NOT MATERIALIZED`` CTE (inlined by the planner like the subquery would
        be) and the placeholder its name.
        """
        if self.name != "postgresql":
            return sql.format(**relations)
        names = _UsedRelations({key: f"asof_{key}" for key in relations})
        body = sql.format_map(names)
        if not names.used:
            return body
        ctes = ", ".join(f"asof_{key} AS NOT MATERIALIZED {relations[key]}" for key in names.used)
        leading = _LEADING_WITH.match(body)
        if leading is None:
            return f"WITH {ctes} {body}"
        # The query has CTEs of its own: ours join its list (RECURSIVE covers all).
        return f"{leading.group(0)}{ctes}, {body[leading.end() :]}"

    def epoch(self, expr: str) -> str:
        """Unix seconds of an ISO timestamp expression."""
        if self.name == "postgresql":
            # EXTRACT returns numeric on PostgreSQL 14+; SQLite's julianday maths is a float.
            return f"CAST(EXTRACT(EPOCH FROM CAST({expr} AS timestamptz)) AS DOUBLE PRECISION)"
        return f"((julianday({expr}) - 2440587.5) * 86400.0)"

    def greatest(self, *exprs: str) -> str:
        """The largest of the expressions; NULL when any of them is NULL (SQLite's rule)."""
        if self.name == "postgresql":
            return _null_if_any_null("GREATEST", exprs)
        return f"MAX({', '.join(exprs)})"

    def least(self, *exprs: str) -> str:
        """The smallest of the expressions; NULL when any of them is NULL (SQLite's rule)."""
        if self.name == "postgresql":
            return _null_if_any_null("LEAST", exprs)
        return f"MIN({', '.join(exprs)})"

    def ts_minus_seconds(self, expr: str, seconds_param: str) -> str:
        """SQL for the stored-form timestamp ``seconds`` before ``expr``."""
        if self.name == "postgresql":
            return (
                f"to_char((CAST({expr} AS timestamptz) - make_interval(secs => {seconds_param}))"
                " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            )
        return f"strftime('%Y-%m-%dT%H:%M:%SZ', {expr}, '-' || {seconds_param} || ' seconds')"

    def hour_index(self, expr: str) -> str:
        """Whole UTC hours since the Unix epoch of an ISO timestamp expression (an integer)."""
        # Half a second in: stored times are whole seconds, and SQLite's julianday
        # arithmetic lands an exact hour a hair below it.
        if self.name == "postgresql":
            # A cast to bigint rounds in PostgreSQL; FLOOR first so both dialects truncate.
            return f"CAST(FLOOR(({self.epoch(expr)} + 0.5) / 3600.0) AS BIGINT)"
        return f"CAST(({self.epoch(expr)} + 0.5) / 3600.0 AS INTEGER)"

    def hour_bucket(self, expr: str) -> str:
        """The stored-form start of the UTC hour that ``expr`` falls in."""
        if self.name == "postgresql":
            return f"(substr({expr}, 1, 13) || ':00:00Z')"
        return f"(substr({expr}, 1, 13) || ':00:00Z')"

    def json_text(self, expr: str, key: str) -> str:
        """The text of top-level field ``key`` of a JSON-object text column; NULL if absent.

        Used for the fields a pipeline adds to its records, which the store keeps
        in ``extra`` (CONTRACT: unknown fields are kept). Text that is not a JSON
        object gives NULL. (No braces here: queries pass through ``str.format``.)
        """
        if not re.fullmatch(r"[A-Za-z_]\w*", key):
            raise ValueError(f"not a plain JSON key: {key!r}")
        if self.name == "postgresql":
            return (
                f"(CASE WHEN left(ltrim({expr}), 1) = chr(123)"
                f" THEN CAST({expr} AS jsonb) ->> '{key}' END)"
            )
        return (
            f"(CASE WHEN json_valid({expr}) AND json_type({expr}) = 'object'"
            f" THEN CAST(json_extract({expr}, '$.{key}') AS TEXT) END)"
        )

    def ddl(self, sql: str | Mapping[str, str]) -> str:
        """Translate SQLite-flavoured DDL from ``_schema``.

        A mapping holds one statement per dialect, used as it is; '' when this
        dialect has none (the caller skips it).
        """
        if not isinstance(sql, str):
            return sql.get(self.name, "")
        if self.name == "postgresql":
            sql = sql.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
            sql = re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)
            sql = re.sub(r"\bINTEGER\b", "BIGINT", sql)
            # Byte order, as SQLite compares text: the same ORDER BY and the same
            # answers to string comparisons whatever the database's locale.
            sql = re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', sql)
        return sql


def _null_if_any_null(fn: str, exprs: tuple[str, ...]) -> str:
    # PostgreSQL's GREATEST/LEAST skip NULLs, SQLite's MAX/MIN return NULL: rules are
    # tested on SQLite, so PostgreSQL follows SQLite.
    if len(exprs) < 2:
        return f"{fn}({', '.join(exprs)})"
    any_null = " OR ".join(f"({e}) IS NULL" for e in exprs)
    return f"(CASE WHEN {any_null} THEN NULL ELSE {fn}({', '.join(exprs)}) END)"


SQLITE = Dialect("sqlite")
POSTGRESQL = Dialect("postgresql")
