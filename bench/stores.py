"""Time bulk writes and one as-of query on the SQLite and PostgreSQL stores.

Usage: ``python bench/stores.py [--rows 100000] [--postgres URL]``

For each store (SQLite in a temp file; PostgreSQL in a fresh schema of the
database at ``--postgres``, default ``$REVIEWER_TEST_POSTGRES`` or
``postgresql://postgres@127.0.0.1:5432/test``, dropped afterwards) prints the
wall time of: upserting ``--rows`` new metric rows, upserting them again
(all conflicts, nothing changed), upserting ``--rows`` tasks, and one
``idle_pending_tasks`` query over them.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from store import Store, open_store
from store.timeutil import fmt_ts

NOW = datetime(2026, 3, 1, tzinfo=UTC)
PRIORITIES = ["low", "normal", "high", "critical"]
STATUSES = ["pending", "pending", "running", "completed", "failed"]


def metrics(n: int) -> Iterator[dict[str, Any]]:
    rnd = random.Random(n)
    for i in range(n):
        yield {
            "task_id": f"task-{i % (n // 3 + 1)}",
            "task_type": rnd.choice(["spec", "impl", "review", "test"]),
            "model": rnd.choice(["claude", "gpt", "cursor/auto"]),
            "executor": rnd.choice(["runner-1", "runner-2"]),
            "duration_seconds": rnd.uniform(5, 900),
            "status": rnd.choice(["completed", "completed", "failed"]),
            "created_at": fmt_ts(NOW - timedelta(seconds=i * 37)),
            "tokens_in": rnd.randint(100, 50_000),
            "tokens_out": rnd.randint(100, 20_000),
            "cost_usd": rnd.uniform(0, 2),
            "api_calls": rnd.randint(1, 40),
        }


def tasks(n: int) -> Iterator[dict[str, Any]]:
    rnd = random.Random(n + 1)
    for i in range(n):
        created = NOW - timedelta(minutes=rnd.randint(0, 60 * 24 * 90))
        status = rnd.choice(STATUSES)
        started = created + timedelta(hours=1) if status != "pending" else None
        finished = started + timedelta(hours=1) if started and status != "running" else None
        yield {
            "id": f"task-{i:07d}",
            "title": f"task {i}",
            "status": status,
            "priority": rnd.choice(PRIORITIES),
            "created_at": fmt_ts(created),
            "updated_at": fmt_ts(finished or started or created),
            "started_at": fmt_ts(started) if started else None,
            "finished_at": fmt_ts(finished) if finished else None,
            "attempts": 0,
            "labels": "[]",
            "depends_on": "[]",
            "files_changed": "[]",
        }


def timed(label: str, fn: Callable[[], object]) -> None:
    t0 = time.perf_counter()
    result = fn()
    ms = (time.perf_counter() - t0) * 1000
    extra = f" ({len(result)} rows)" if isinstance(result, list) else ""
    print(f"  {label:<42} {ms:9.0f} ms{extra}")


def run(name: str, store: Store, n: int) -> None:
    print(f"{name}:")
    timed(f"upsert {n} new metric rows", lambda: store.upsert_metrics(metrics(n)))
    timed(f"upsert the same {n} metric rows again", lambda: store.upsert_metrics(metrics(n)))
    timed(f"upsert {n} tasks", lambda: store.upsert_tasks(tasks(n)))
    view = store.view(NOW)
    timed("idle_pending_tasks(7d), first run", lambda: view.idle_pending_tasks(timedelta(days=7)))
    timed("idle_pending_tasks(7d), again", lambda: view.idle_pending_tasks(timedelta(days=7)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "REVIEWER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            run("SQLite", store, args.rows)
        finally:
            store.close()

    import psycopg

    schema = f"reviewer_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in args.postgres else "?"
        store = open_store(f"{args.postgres}{sep}options=-csearch_path%3D{schema}")
        try:
            run("PostgreSQL", store, args.rows)
        finally:
            store.close()
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
