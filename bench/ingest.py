"""Ingest speed: ``reviewer ingest tasks|metrics`` through the CLI, against a raw floor.

    python bench/ingest.py [--records 100000] [--stores sqlite,postgresql] [--pg URL]
                           [--code DIR] [--profile]

Writes N realistic task and metric records (JSON Lines, in a temp folder; a
few timestamps in other ISO 8601 forms and a few unknown fields, as pipelines
write them), then for each store times ``python -m reviewer ingest
tasks|metrics FILE`` end to end in a subprocess (start-up included) into a new
store, then the same file again (every row an unchanged upsert), and prints
records per second beside the floor: a plain ``executemany`` of the same rows
(already parsed, no validation) into a table with only its primary key
(SQLite), or a plain COPY into such a table (PostgreSQL). ``--code DIR`` runs
the CLI of another checkout (to time the code before a change);
``--profile`` prints the top of a cProfile of the SQLite metrics load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 1, tzinfo=UTC)
PG_URL = os.environ.get("REVIEWER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

TYPES = [("impl", 0.45), ("test", 0.2), ("review", 0.2), ("spec", 0.1), ("docs", 0.05)]
MODELS = [("claude-sonnet", 0.5), ("gpt-4o", 0.3), ("cursor/auto", 0.2)]
EXECUTORS = ["runner-1", "runner-2", "runner-3", "runner-4"]
STATUSES = [("completed", 0.6), ("failed", 0.05), ("pending", 0.25), ("running", 0.1)]


def _pick(rnd: random.Random, weighted: list[tuple[str, float]]) -> str:
    return rnd.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def _when(rnd: random.Random, seconds: int) -> str:
    at = NOW - timedelta(seconds=seconds)
    r = rnd.random()
    if r < 0.02:  # other ISO 8601 forms a pipeline writes
        return at.astimezone().isoformat()
    if r < 0.03:
        return at.strftime("%Y-%m-%d %H:%M:%S")
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def metric_record(rnd: random.Random, i: int) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "task_id": f"bench-{i:07d}",
        "task_type": _pick(rnd, TYPES),
        "model": _pick(rnd, MODELS),
        "executor": rnd.choice(EXECUTORS),
        "duration_seconds": round(rnd.uniform(10, 900), 1),
        "status": "completed" if rnd.random() < 0.9 else "failed",
        "created_at": _when(rnd, rnd.randint(0, 90 * 86400)),
        "tokens_in": rnd.randint(100, 50_000),
        "tokens_out": rnd.randint(100, 20_000),
        "cost_usd": round(rnd.uniform(0, 1), 4),
        "api_calls": rnd.randint(1, 40),
    }
    if rnd.random() < 0.3:
        rec["prompt_variant"] = rnd.choice(["a", "b"])
    if rec["status"] == "failed":
        rec["error"] = "tool call timed out after 300s"
    if rnd.random() < 0.05:
        rec["region"] = "eu-west-1"  # an unknown field, kept in extra
    return rec


def task_record(rnd: random.Random, i: int) -> dict[str, Any]:
    created = rnd.randint(3600, 90 * 86400)
    status = _pick(rnd, STATUSES)
    rec: dict[str, Any] = {
        "id": f"bench-{i:07d}",
        "title": f"Implement part {i} of the importer",
        "task_type": _pick(rnd, TYPES),
        "phase": rnd.choice(["plan", "build", "verify"]),
        "status": status,
        "priority": rnd.choice(["normal", "normal", "high", "low"]),
        "created_at": _when(rnd, created),
        "updated_at": _when(rnd, created - 600),
        "attempts": rnd.randint(0, 3),
        "labels": rnd.choice([[], ["backend"], ["backend", "db"]]),
        "model": _pick(rnd, MODELS),
        "executor": rnd.choice(EXECUTORS),
    }
    if status != "pending":
        rec["started_at"] = _when(rnd, created - 60)
    if status in ("completed", "failed"):
        rec["finished_at"] = _when(rnd, created - 1200)
        rec["files_changed"] = ["src/importer.py", "tests/test_importer.py"]
    if rnd.random() < 0.5:
        rec["depends_on"] = [f"bench-{rnd.randint(0, max(i - 1, 0)):07d}"]
    if rnd.random() < 0.2:
        rec["description"] = "Parse the vendor's CSV export and load it in batches."
    return rec


def write_files(folder: Path, n: int) -> dict[str, Path]:
    rnd = random.Random(n)
    out = {}
    for kind, make in (("tasks", task_record), ("metrics", metric_record)):
        path = folder / f"{kind}-{n}.jsonl"
        with path.open("w") as fh:
            for i in range(n):
                fh.write(json.dumps(make(rnd, i)) + "\n")
        out[kind] = path
    out["empty"] = folder / "empty.jsonl"
    out["empty"].write_text("")
    return out


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cli(url: str, kind: str, path: Path, code: Path) -> tuple[float, float]:
    """Wall-clock and CPU seconds (the CLI process's own) of one ``reviewer ingest``."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    cpu0 = _child_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "reviewer", "--store", url, "ingest", kind, str(path)],
        env=env,
        cwd=code,  # `python -m` puts the working folder first on the path
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t0
    cpu = _child_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"ingest {kind} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds, cpu


# -- the floor: the same rows, parsed, through the database's plain bulk path ---------
def _rows(path: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
    records = [json.loads(line) for line in path.open()]
    cols = sorted({k for r in records for k in r})
    rows = [
        tuple(json.dumps(v) if isinstance(v, list) else v for v in (r.get(c) for c in cols))
        for r in records
    ]
    return cols, rows


def _pk(kind: str) -> str:
    return "id" if kind == "tasks" else "task_id, created_at"


def floor_sqlite(folder: Path, kind: str, path: Path) -> float:
    cols, rows = _rows(path)
    db = folder / f"floor-{kind}-{uuid.uuid4().hex[:6]}.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"CREATE TABLE t ({', '.join(cols)}, PRIMARY KEY ({_pk(kind)}))")
    marks = ", ".join("?" for _ in cols)
    t0 = time.perf_counter()
    for start in range(0, len(rows), 5000):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(f"INSERT INTO t VALUES ({marks})", rows[start : start + 5000])
        conn.execute("COMMIT")
    seconds = time.perf_counter() - t0
    conn.close()
    return seconds


def floor_postgres(url: str, kind: str, path: Path) -> float:
    import psycopg

    cols, rows = _rows(path)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE floor_t ({', '.join(c + ' text' for c in cols)})")
        conn.execute(f"ALTER TABLE floor_t ADD PRIMARY KEY ({_pk(kind)})")
        t0 = time.perf_counter()
        for start in range(0, len(rows), 5000):
            copy = f"COPY floor_t ({', '.join(cols)}) FROM STDIN"
            with conn.transaction(), conn.cursor() as cur, cur.copy(copy) as sink:
                for row in rows[start : start + 5000]:
                    sink.write_row(row)
        seconds = time.perf_counter() - t0
        conn.execute("DROP TABLE floor_t")
    return seconds


class _Schema:
    def __init__(self) -> None:
        self.name = f"bench_ingest_{uuid.uuid4().hex[:10]}"

    def __enter__(self) -> str:
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'CREATE SCHEMA "{self.name}"')
        sep = "&" if "?" in PG_URL else "?"
        return f"{PG_URL}{sep}options=-csearch_path%3D{self.name}"

    def __exit__(self, *exc: object) -> None:
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{self.name}" CASCADE')


def bench_store(
    store: str, folder: Path, files: dict[str, Path], n: int, code: Path
) -> list[dict[str, Any]]:
    out = []
    for kind in ("tasks", "metrics"):
        if store == "sqlite":
            db = folder / f"store-{kind}-{uuid.uuid4().hex[:6]}.db"
            url = f"sqlite:///{db}"
            startup = run_cli(url, kind, files["empty"], code)
            first = run_cli(url, kind, files[kind], code)
            again = run_cli(url, kind, files[kind], code)
            floor = floor_sqlite(folder, kind, files[kind])
        else:
            with _Schema() as url:
                startup = run_cli(url, kind, files["empty"], code)
                first = run_cli(url, kind, files[kind], code)
                again = run_cli(url, kind, files[kind], code)
                floor = floor_postgres(url, kind, files[kind])
        out.append(
            {
                "store": store,
                "kind": kind,
                "startup": startup[0],
                "first": first[0],
                "load_cpu": first[1] - startup[1],
                "again": again[0],
                "floor": floor,
            }
        )
    return out


def profile(folder: Path, path: Path, code: Path) -> None:
    sys.path.insert(0, str(code))
    import cProfile
    import pstats

    from reviewer.ingest import ingest_jsonl
    from store import open_store

    store = open_store(f"sqlite:///{folder / 'profile.db'}")
    prof = cProfile.Profile()
    prof.enable()
    ingest_jsonl(store, path, "metrics", now="2026-03-01T00:00:00Z")
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--code", type=Path, default=ROOT)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    n = args.records
    with tempfile.TemporaryDirectory(prefix="reviewer-ingest-") as tmp:
        folder = Path(tmp)
        files = write_files(folder, n)
        if args.profile:
            profile(folder, files["metrics"], args.code.resolve())
            return
        print(
            f"{n} records per file, through the CLI (start-up included; 'load' leaves the"
            " start-up out, 'cpu' counts the CLI's CPU seconds only, not the PostgreSQL"
            " server's); floor: bulk insert of parsed rows into a table with its PK only"
        )
        print(
            f"{'store':<11}{'kind':<9}{'start s':>8}{'first/s':>10}{'load/s':>10}"
            f"{'cpu/s':>10}{'again/s':>10}{'floor/s':>10}{'x floor':>9}"
        )
        for store in args.stores.split(","):
            for r in bench_store(store, folder, files, n, args.code.resolve()):
                load = max(r["first"] - r["startup"], 1e-9)
                print(
                    f"{r['store']:<11}{r['kind']:<9}{r['startup']:>8.2f}{n / r['first']:>10,.0f}"
                    f"{n / load:>10,.0f}{n / max(r['load_cpu'], 1e-9):>10,.0f}"
                    f"{n / r['again']:>10,.0f}{n / r['floor']:>10,.0f}"
                    f"{load / r['floor']:>8.1f}x"
                )


if __name__ == "__main__":
    main()
