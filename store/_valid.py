"""Which pipeline rows the reviewer can read (issue 9: direct SQL writers).

The reviewer's own ingest validates every record, but a pipeline may write the
tables directly: a ``created_at`` of ``'-5'`` or a ``cost_usd`` of ``'x'`` would
then make a rule fail every cycle. So the as-of relations (``store._view``) read
only rows whose timestamps have the stored form (the triggers normalise what they
can) and whose numbers are numbers; the rest are skipped, and counted
(``ReviewerState.count_unreadable``) so a review says how many.
"""

from __future__ import annotations

from store._dialect import Dialect

# Timestamp columns (the first of each table is NOT NULL) and numeric columns.
TIMESTAMPS = {
    "tasks": ("created_at", "updated_at", "started_at", "finished_at"),
    "task_metrics": ("created_at",),
    "test_results": ("ran_at",),
    "coverage": ("recorded_at",),
}
NUMBERS = {
    "tasks": ("attempts",),
    "task_metrics": ("duration_seconds", "tokens_in", "tokens_out", "cost_usd", "api_calls"),
    "test_results": ("duration_seconds",),
    "coverage": ("lines_valid", "lines_covered", "branches_valid", "branches_covered"),
}
# Columns a rule may take for granted (NOT NULL in the schema, but SQLite lets a NULL
# into a TEXT primary key).
REQUIRED = {
    "tasks": ("id", "title", "status", "priority"),
    "task_metrics": ("task_id", "status"),
    "test_results": ("run_id", "test_id", "commit_sha", "outcome"),
    "coverage": ("commit_sha", "file"),
}
_GLOB = "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z'"
# No braces: the condition goes into SQL that is str.format()-ed with the relations.
_REGEX = "'^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z$'"


def readable(d: Dialect, table: str, alias: str = "") -> str:
    """A SQL condition true for a row of ``table`` the rules can read."""
    p = f"{alias}." if alias else ""
    parts = []
    for i, col in enumerate(TIMESTAMPS[table]):
        form = f"{p}{col} ~ {_REGEX}" if d.name == "postgresql" else f"{p}{col} GLOB {_GLOB}"
        parts.append(form if i == 0 else f"({p}{col} IS NULL OR {form})")
    parts += [f"{p}{col} IS NOT NULL" for col in REQUIRED[table]]
    if d.name != "postgresql":  # PostgreSQL's columns are typed: a number is a number
        parts += [f"typeof({p}{col}) IN ('integer', 'real', 'null')" for col in NUMBERS[table]]
        # SQLite keeps what it is given: text columns hold text (not a BLOB or a number).
        parts += [f"typeof({p}{col}) IN ('text', 'null')" for col in _text_columns(table)]
    return " AND ".join(parts)


def _text_columns(table: str) -> tuple[str, ...]:
    from store._schema import (
        COVERAGE_COLUMNS,
        METRIC_COLUMNS,
        TASK_COLUMNS,
        TEST_RESULT_COLUMNS,
    )

    columns = {
        "tasks": TASK_COLUMNS,
        "task_metrics": METRIC_COLUMNS,
        "test_results": TEST_RESULT_COLUMNS,
        "coverage": COVERAGE_COLUMNS,
    }[table]
    typed = set(TIMESTAMPS[table]) | set(NUMBERS[table])
    return tuple(c for c in columns if c not in typed)


def count_unreadable_sql(d: Dialect) -> str:
    """One query counting the rows of every pipeline table that ``readable`` skips."""
    parts = [
        f"(SELECT COUNT(*) FROM {table} WHERE NOT ({readable(d, table)}))" for table in TIMESTAMPS
    ]
    return f"SELECT {' + '.join(parts)} AS n"
