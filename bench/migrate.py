"""Print how fast ``reviewer migrate`` copies a store, and its peak memory.

Builds (once, cached like ``bench/scale.py``) a SQLite store of N tasks with
their metrics and test results, then copies it to a new SQLite file and, when
a PostgreSQL server is reachable, to a fresh schema there; each copy runs in a
child process so its peak RSS is its own.

    python bench/migrate.py --tasks 100000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
PG_URL = os.environ.get("REVIEWER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def child(source: str, target: str, batch: int) -> None:
    from store import open_store
    from store.transfer import copy_store

    src, dst = open_store(source), open_store(target)
    t0 = time.perf_counter()
    reports = copy_store(src, dst, batch=batch)
    took = time.perf_counter() - t0
    src.close()
    dst.close()
    rows = sum(r.source_rows for r in reports)
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": round(took, 2),
                "rows_per_s": round(rows / took),
                "ok": all(r.ok for r in reports),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


def run_child(source: str, target: str, batch: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", source, target, str(batch)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    from scale import cached_store

    source = cached_store(args.tasks, 7)
    print(f"source {source} ({source.stat().st_size / 1e6:.0f} MB), batch {args.batch}")
    with tempfile.TemporaryDirectory() as tmp:
        r = run_child(f"sqlite:///{source}", f"sqlite:///{Path(tmp) / 'copy.db'}", args.batch)
        print(f"SQLite -> SQLite     {r}")
    try:
        import psycopg

        schema = f"bench_migrate_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'CREATE SCHEMA "{schema}"')
    except Exception as exc:
        print(f"SQLite -> PostgreSQL skipped: {exc}")
        return
    try:
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        r = run_child(f"sqlite:///{source}", url, args.batch)
        print(f"SQLite -> PostgreSQL {r}")
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
