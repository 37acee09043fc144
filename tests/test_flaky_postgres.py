"""The flaky-tests cases on PostgreSQL: the same findings as on SQLite, to the word.

flaky-tests leans on SQL the two databases could read differently (window
functions over ties, correlated subqueries, a forced join order, MATERIALIZED
CTEs), so each case of tests/cases/flaky-tests.toml runs on a fresh PostgreSQL
schema and must give what the case expects and exactly what SQLite gives:
kinds, subjects, summaries and evidence. Needs ``REVIEWER_TEST_POSTGRES``
(default ``postgresql://postgres@127.0.0.1:5432/test``); skipped without a
server, except under CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import os
import tomllib
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from reviewer.models import Finding
from rules import flaky_tests
from store.postgres import PostgresStore
from tests import support

PG_URL = os.environ.get("REVIEWER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
CASES = tomllib.loads((Path(__file__).parent / "cases" / "flaky-tests.toml").read_text())["case"]

pytestmark = pytest.mark.postgres


@cache
def _unreachable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"no PostgreSQL at {PG_URL} ({type(exc).__name__}: {exc})"
    return None


@pytest.fixture(scope="module")
def pg_store() -> Iterator[PostgresStore]:
    """One fresh schema for the module; each case empties test_results first."""
    reason = _unreachable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the PostgreSQL tests", pytrace=False)
        pytest.skip(f"{reason}; set REVIEWER_TEST_POSTGRES to run these")
    import psycopg

    schema = f"reviewer_flaky_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    store = PostgresStore(f"{PG_URL}{sep}options=-csearch_path%3D{schema}")
    try:
        yield store
    finally:
        store.close()
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _findings(case: dict[str, Any], store: Any) -> list[tuple[str, str, str, Any]]:
    options = flaky_tests.Options.model_validate(case.get("options", {}))
    found: list[Finding] = list(flaky_tests.check(options, store.view(case["now"])))
    return sorted((f.kind, f.subject, f.summary, f.evidence) for f in found)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_flaky_case_on_postgres(case: dict[str, Any], pg_store: PostgresStore) -> None:
    records = [
        *case.get("test_results", []),
        *support.expand_series(case.get("series", []))["test_results"],
    ]
    pg_store.execute("TRUNCATE test_results")
    pg_store.upsert_test_results(support.test_result_rows(records))
    got = _findings(case, pg_store)

    want = sorted((e["kind"], e["subject"]) for e in case["expect"])
    assert [(kind, subject) for kind, subject, _, _ in got] == want
    for expected in case["expect"]:
        evidence = next(
            e for k, s, _, e in got if (k, s) == (expected["kind"], expected["subject"])
        )
        for name, value in expected.get("evidence", {}).items():
            assert evidence.get(name) == value, f"evidence {name}: {evidence.get(name)!r}"

    sqlite = support.make_store(test_results=records)
    try:
        assert got == _findings(case, sqlite)
    finally:
        sqlite.close()
