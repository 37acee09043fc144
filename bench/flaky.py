"""Time the flaky-tests rule on stores of N tests × M runs, on SQLite and PostgreSQL.

Usage: ``python bench/flaky.py [--sizes 10000x50,100000x50] [--repeat 3] [--dir /tmp]
[--postgres URL | --no-postgres] [--rebuild]``

Each store is built once from a seeded generator (reused on the next run when
the file or schema is already there) and bulk-loaded in one transaction:
``executemany`` on SQLite, ``COPY`` on PostgreSQL. The suite is mostly healthy
tests with the odd random failure and the odd conditional skip, plus injected
trouble: flaky tests (random failures, some on a commit that also passed, some
rerun-flaky), broken tests (pass until a commit, fail ever after), holdouts
(skipped for good, some for longer than ``skipped_for``) and tests that no
longer run. The script prints the median wall time of ``check()`` and of each
of its queries, and the findings by kind (the same on every store of a size,
or it says so).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rules import flaky_tests
from store import TEST_RESULT_COLUMNS
from store.sqlite import SQLiteStore
from store.timeutil import fmt_ts

NOW = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(hours=12)  # 50 runs span 25 days: long enough for 14-day holdouts
PG_URL = os.environ.get("REVIEWER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SKIP_MESSAGE = {"skipped": "not on CI"}
MESSAGES = ["timeout after 30s", "expected 200, got 503", "ConnectionResetError", None]


def _profile(rnd: random.Random, runs: int) -> tuple[str, int]:
    """What kind of test this is, and the run where its trouble begins."""
    x = rnd.random()
    start = rnd.randrange(runs)
    for kind, share in (
        ("flaky", 0.010),
        ("broken", 0.002),
        ("holdout", 0.004),
        ("sometimes-skipped", 0.010),
        ("removed", 0.005),
    ):
        if x < share:
            return kind, start
        x -= share
    return "healthy", start


def results(n_tests: int, n_runs: int, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """Test result rows in TEST_RESULT_COLUMNS order, one run after another."""
    rnd = random.Random(seed)
    profiles = [_profile(rnd, n_runs) for _ in range(n_tests)]
    names = [(f"pkg{t % 97}.mod{t % 1013}", f"test_case_{t}") for t in range(n_tests)]
    commit = ""
    for run in range(n_runs):
        at = fmt_ts(NOW - STEP * (n_runs - run) + timedelta(minutes=rnd.randrange(60)))
        # One run in five re-runs the previous commit (a retry, a nightly).
        if run == 0 or rnd.random() >= 0.2:
            commit = f"{rnd.getrandbits(160):040x}"
        run_id = f"run-{run:05d}"
        for t in range(n_tests):
            kind, start = profiles[t]
            outcome = "passed"
            if kind == "healthy":
                if rnd.random() < 0.0005:
                    outcome = "failed"
            elif kind == "flaky":
                x = rnd.random()
                outcome = "failed" if x < 0.15 else "flaky" if x < 0.17 else "passed"
            elif kind == "broken":
                outcome = "failed" if run >= start else "passed"
            elif kind == "holdout":
                outcome = "skipped" if run >= start else "passed"
            elif kind == "sometimes-skipped":
                outcome = "skipped" if run % 7 == t % 7 else "passed"
            elif kind == "removed" and run >= start:
                continue
            classname, name = names[t]
            bad = outcome in ("failed", "flaky")
            yield (
                run_id,
                f"{classname}::{name}",
                classname,
                name,
                commit,
                "main",
                outcome,
                round(rnd.random(), 3),
                MESSAGES[t % len(MESSAGES)] if bad else SKIP_MESSAGE.get(outcome),
                None,
                at,
            )


def build_sqlite(path: Path, n_tests: int, n_runs: int) -> None:
    store = SQLiteStore(str(path))
    cols = ", ".join(TEST_RESULT_COLUMNS)
    marks = ", ".join("?" for _ in TEST_RESULT_COLUMNS)
    conn = store.conn
    conn.execute("BEGIN")
    rows = results(n_tests, n_runs)
    while batch := [row for _, row in zip(range(50_000), rows, strict=False)]:
        conn.executemany(f"INSERT INTO test_results ({cols}) VALUES ({marks})", batch)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    store.close()


def build_postgres(url: str, n_tests: int, n_runs: int) -> None:
    from store.postgres import PostgresStore

    store = PostgresStore(url)
    cols = ", ".join(TEST_RESULT_COLUMNS)
    copy = f"COPY test_results ({cols}) FROM STDIN"
    with store.transaction(), store.conn.cursor() as cur, cur.copy(copy) as sink:
        for row in results(n_tests, n_runs):
            sink.write_row(row)
    store.conn.execute("ANALYZE test_results")
    store.close()


def pg_schema(url: str, schema: str, rebuild: bool) -> tuple[str, bool]:
    """A store URL for ``schema`` and whether the schema already holds a store."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        if rebuild:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        exists = admin.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s"
            " AND table_name = 'test_results'",
            (schema,),
        ).fetchone()
        admin.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}", exists is not None


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def measure(store: Any, repeat: int) -> tuple[dict[str, float], Counter[str], list[Any]]:
    options = flaky_tests.Options()
    view = store.view(NOW)
    figures = {
        "long_skipped_tests": median_ms(
            lambda: view.long_skipped_tests(options.skipped_for), repeat
        ),
        "test_outcome_summaries": median_ms(
            lambda: view.test_outcome_summaries(
                window=options.window,
                failed_since=options.recover_after,
                broken_after=options.broken_after,
                min_runs=options.min_runs,
                flip_rate=options.flip_rate,
            ),
            repeat,
        ),
    }
    findings: list[Any] = []
    figures["check()"] = median_ms(
        lambda: findings.__setitem__(slice(None), flaky_tests.check(options, view)), repeat
    )
    return figures, Counter(f.kind for f in findings), findings


def dump(path: str, label: str, findings: list[Any]) -> None:
    """Write the findings as sorted JSON lines, to compare two versions of the rule."""
    lines = sorted(
        json.dumps([f.kind, f.subject, f.summary, f.evidence], sort_keys=True, default=str)
        for f in findings
    )
    Path(f"{path}.{label}.jsonl").write_text("".join(line + "\n" for line in lines))


def report(label: str, figures: dict[str, float], kinds: Counter[str]) -> None:
    parts = ", ".join(f"{k} {v:,.0f} ms" for k, v in figures.items())
    print(f"  {label:<10} {parts}; findings {dict(sorted(kinds.items()))}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000x50,100000x50")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--postgres", default=PG_URL)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--rebuild", action="store_true", help="regenerate the stores")
    parser.add_argument("--findings", help="write the findings to FILE.<size>.<store>.jsonl")
    args = parser.parse_args()

    for size in args.sizes.split(","):
        n_tests, n_runs = (int(x) for x in size.lower().split("x"))
        print(f"{n_tests:,} tests x {n_runs} runs", flush=True)
        path = Path(args.dir) / f"reviewer-bench-flaky-{n_tests}x{n_runs}.db"
        if args.rebuild or not path.exists():
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            t0 = time.perf_counter()
            build_sqlite(path, n_tests, n_runs)
            print(f"  built {path} in {time.perf_counter() - t0:.0f} s", flush=True)
        store = SQLiteStore(str(path))
        try:
            store.conn.execute("PRAGMA optimize")
            rows = store.query("SELECT COUNT(*) AS n FROM test_results")[0]["n"]
            print(f"  {rows:,} test_results rows", flush=True)
            figures, sqlite_kinds, found = measure(store, args.repeat)
            report("sqlite", figures, sqlite_kinds)
            if args.findings:
                dump(args.findings, f"{size}.sqlite", found)
        finally:
            store.close()

        if args.no_postgres:
            continue
        try:
            url, exists = pg_schema(args.postgres, f"bench_flaky_{n_tests}x{n_runs}", args.rebuild)
        except Exception as exc:  # any failure means "no server"
            print(f"  postgres   skipped: {type(exc).__name__}: {exc}", flush=True)
            continue
        from store.postgres import PostgresStore

        if not exists:
            t0 = time.perf_counter()
            build_postgres(url, n_tests, n_runs)
            print(f"  built PostgreSQL schema in {time.perf_counter() - t0:.0f} s", flush=True)
        pg = PostgresStore(url)
        try:
            figures, pg_kinds, found = measure(pg, args.repeat)
            report("postgres", figures, pg_kinds)
            if args.findings:
                dump(args.findings, f"{size}.postgres", found)
            if pg_kinds != sqlite_kinds:
                print("  !! PostgreSQL and SQLite disagree on the findings", flush=True)
        finally:
            pg.close()


if __name__ == "__main__":
    main()
