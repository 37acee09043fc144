"""The few SQL differences between SQLite and PostgreSQL, in one place.

Store code writes SQL once, with ``:name`` parameters and the helpers below;
each adapter translates it for its database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAMED_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@dataclass(frozen=True)
class Dialect:
    name: str

    def params(self, sql: str) -> str:
        """Rewrite ``:name`` parameters into the driver's style."""
        if self.name == "postgresql":
            return _NAMED_PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))
        return sql

    def epoch(self, expr: str) -> str:
        """Unix seconds of an ISO timestamp expression."""
        if self.name == "postgresql":
            return f"EXTRACT(EPOCH FROM CAST({expr} AS timestamptz))"
        return f"((julianday({expr}) - 2440587.5) * 86400.0)"

    def greatest(self, *exprs: str) -> str:
        fn = "GREATEST" if self.name == "postgresql" else "MAX"
        return f"{fn}({', '.join(exprs)})"

    def least(self, *exprs: str) -> str:
        fn = "LEAST" if self.name == "postgresql" else "MIN"
        return f"{fn}({', '.join(exprs)})"

    def ts_minus_seconds(self, expr: str, seconds_param: str) -> str:
        """SQL for the stored-form timestamp ``seconds`` before ``expr``."""
        if self.name == "postgresql":
            return (
                f"to_char((CAST({expr} AS timestamptz) - make_interval(secs => {seconds_param}))"
                " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            )
        return f"strftime('%Y-%m-%dT%H:%M:%SZ', {expr}, '-' || {seconds_param} || ' seconds')"

    def hour_bucket(self, expr: str) -> str:
        """The stored-form start of the UTC hour that ``expr`` falls in."""
        if self.name == "postgresql":
            return f"(substr({expr}, 1, 13) || ':00:00Z')"
        return f"(substr({expr}, 1, 13) || ':00:00Z')"

    def ddl(self, sql: str) -> str:
        """Translate SQLite-flavoured DDL from ``_schema``."""
        if self.name == "postgresql":
            sql = sql.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
            sql = re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)
            sql = re.sub(r"\bINTEGER\b", "BIGINT", sql)
        return sql


SQLITE = Dialect("sqlite")
POSTGRESQL = Dialect("postgresql")
