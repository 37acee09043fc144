"""Scale: review cycles on stores of 10^4 to 10^6 tasks, against the raw-SQL floor and pandas.

    python bench/scale.py [--sizes 10000,100000] [--million] [--seed 7] [--code DIR]

For each size it builds (or takes from the cache under /tmp, keyed by size and
seed) a SQLite store of 90 days: about 1.1 metric rows per task, 10^5 test
results, realistic status, type, phase and priority mixes, and one abandoned
pending task per thousand (about 1,000 at 10^6) besides the recent queue: the
case that guards that no rule grows faster than linearly in the backlog (each
rule's ``check()`` time is printed per size, with its growth between the last
two sizes; linear is the size ratio).
Stores are written by ``executemany`` straight into SQLite, not through the
simulator. Then, each in a child process (so peak RSS is the child's own
``ru_maxrss``), it times:

- ``cold``: the first review cycle on a copy of the store (no reviewer state);
- ``steady``: a second cycle at the same instant (nothing changed);
- ``+1%``: a cycle an hour later, after 1% new tasks and metrics;
- ``ingest``: ``reviewer ingest metrics`` of a JSON Lines file, through the CLI
  (its start-up included), as records per second;
- ``floor``: the minimal raw-SQL scans any implementation needs (a count, a
  GROUP BY over metrics, a sorted fetch of durations, an indexed lookup of
  pending tasks);
- ``pandas``: a short pandas script that loads the tables and computes the core
  checks (stale and starved pending tasks, stuck running tasks, duration
  percentiles, error rates, hourly usage, test pass rates).

Each cycle is printed as a ratio to the floor and to pandas measured in the
same run. ``--code DIR`` imports the reviewer from another checkout (to time
the code before a change with the same script). pandas comes with the
``bench`` extra (``pip install 'reviewer[bench]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 1, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
DAYS = 90
TEST_RESULTS = 100_000
CACHE = Path(tempfile.gettempdir()) / "reviewer-scale"

TYPES = [("impl", 0.45), ("test", 0.2), ("review", 0.2), ("spec", 0.1), ("docs", 0.05)]
PHASES = ["plan", "build", "verify", None]
PRIORITIES = [("normal", 0.7), ("high", 0.15), ("low", 0.1), ("critical", 0.05)]
MODELS = [("claude-sonnet", 0.5), ("gpt-4o", 0.3), ("cursor/auto", 0.2)]
EXECUTORS = ["runner-1", "runner-2", "runner-3", "runner-4"]
MEDIAN_SECONDS = {"impl": 600, "test": 240, "review": 180, "spec": 420, "docs": 120}


def ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def pick(rnd: random.Random, weighted: list[tuple[str, float]]) -> str:
    return rnd.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


# -- building stores -------------------------------------------------------------------
def _task_rows(
    rnd: random.Random, n: int, start: int, first: datetime, last: datetime, abandoned: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """``n`` tasks created between ``first`` and ``last``, and their metric rows."""
    tasks: list[tuple[Any, ...]] = []
    metrics: list[tuple[Any, ...]] = []
    span = (last - first).total_seconds()
    abandon_at = set(rnd.sample(range(n), min(abandoned, n)))
    for i in range(n):
        created = first + timedelta(seconds=span * (i + rnd.random()) / n)
        ttype = pick(rnd, TYPES)
        phase = rnd.choice(PHASES)
        priority = pick(rnd, PRIORITIES)
        model = pick(rnd, MODELS)
        executor = rnd.choice(EXECUTORS)
        age = (last - created).total_seconds()
        wait = rnd.expovariate(1 / 1800)
        dur = MEDIAN_SECONDS[ttype] * rnd.lognormvariate(0, 0.6)
        if i in abandon_at or age < wait:
            status = "pending"
        elif age < wait + dur:
            status = "running"
        else:
            status = rnd.choices(["completed", "failed", "cancelled"], [0.9, 0.08, 0.02])[0]
        started = created + timedelta(seconds=wait) if status != "pending" else None
        finished = started + timedelta(seconds=dur) if started and status != "running" else None
        updated = finished or started or created
        tid = f"t{start + i:07d}"
        tasks.append(
            (
                tid,
                f"{ttype} task {start + i}",
                f"Do the {ttype} work number {start + i}.",
                ttype,
                phase,
                status,
                priority,
                ts(created),
                ts(updated),
                ts(started) if started else None,
                ts(finished) if finished else None,
                1,
                "[]",
                "[]",
                model,
                executor,
                json.dumps([f"src/mod{rnd.randint(0, 400)}.py"]) if finished else "[]",
            )
        )
        if finished is None:
            continue
        tries = 2 if rnd.random() < 0.1 else 1
        for k in range(tries):
            ok = status == "completed" and k == tries - 1
            tin = int(rnd.lognormvariate(9, 0.5))
            metrics.append(
                (
                    tid,
                    ttype,
                    model,
                    executor,
                    round(dur / tries, 1),
                    "completed" if ok else "failed",
                    ts(finished - timedelta(seconds=(tries - 1 - k) * 60)),
                    tin,
                    tin // 4,
                    round(tin * 3e-6, 5),
                    rnd.randint(1, 30),
                    None if ok else "error: exit 1",
                )
            )
    return tasks, metrics


_TASK_SQL = """INSERT INTO tasks (id, title, description, task_type, phase, status, priority,
    created_at, updated_at, started_at, finished_at, attempts, depends_on, labels, model,
    executor, files_changed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
_METRIC_SQL = """INSERT OR IGNORE INTO task_metrics (task_id, task_type, model, executor,
    duration_seconds, status, created_at, tokens_in, tokens_out, cost_usd, api_calls, error)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""


def _test_rows(rnd: random.Random) -> list[tuple[Any, ...]]:
    tests = 200
    runs = TEST_RESULTS // tests
    flaky = set(rnd.sample(range(tests), 6))
    rows = []
    for r in range(runs):
        ran = NOW - timedelta(days=DAYS) + timedelta(seconds=DAYS * 86400 * (r + 0.5) / runs)
        sha = f"{rnd.getrandbits(40):010x}"
        for t in range(tests):
            fails = rnd.random() < (0.2 if t in flaky else 0.002)
            rows.append(
                (
                    f"run-{r:05d}",
                    f"tests.test_m{t // 20}::test_{t}",
                    f"tests.test_m{t // 20}",
                    f"test_{t}",
                    sha,
                    "main",
                    "failed" if fails else "passed",
                    round(rnd.uniform(0.01, 2), 3),
                    "AssertionError" if fails else None,
                    f"tests/test_m{t // 20}.py",
                    ts(ran),
                )
            )
    return rows


def build(path: Path, n: int, seed: int) -> None:
    """A store of ``n`` tasks over ``DAYS`` days, written straight into SQLite."""
    with _imports():
        from store.sqlite import SQLiteStore

        SQLiteStore(path).close()  # the schema, by the store's own migrations
    rnd = random.Random(seed * 1_000_003 + n)
    tasks, metrics = _task_rows(rnd, n, 0, NOW - timedelta(days=DAYS), NOW, max(1, n // 1000))
    db = sqlite3.connect(path)
    # Load without the indexes and build them after: the same store, minutes sooner.
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        " AND tbl_name IN ('tasks', 'task_metrics', 'test_results')"
    ).fetchall()
    with db:
        for name, _ in indexes:
            db.execute(f"DROP INDEX {name}")
        db.executemany(_TASK_SQL, tasks)
        db.executemany(_METRIC_SQL, metrics)
        db.executemany(f"INSERT INTO test_results VALUES ({', '.join('?' * 11)})", _test_rows(rnd))
        for _, sql in indexes:
            db.execute(sql)
    db.execute("ANALYZE")
    db.close()


def add_new_data(path: Path, n: int, seed: int) -> None:
    """1% new tasks (created in the hour before ``LATER``) and their metrics."""
    rnd = random.Random(seed + 99)
    tasks, metrics = _task_rows(rnd, max(1, n // 100), n, NOW, LATER, 0)
    db = sqlite3.connect(path)
    with db:
        db.executemany(_TASK_SQL, tasks)
        db.executemany(_METRIC_SQL, metrics)
    db.close()


def cached_store(n: int, seed: int) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"tasks-{n}-seed-{seed}.db"
    if not path.exists():
        t0 = time.perf_counter()
        part = path.with_suffix(".part")
        part.unlink(missing_ok=True)
        in_child("build", str(part), str(n), str(seed))  # keeps this process small
        part.rename(path)
        print(f"  built {path} in {time.perf_counter() - t0:.1f} s", flush=True)
    return path


class _imports:
    """sys.path with ``--code`` (or this checkout) first, for the store's schema."""

    def __enter__(self) -> None:
        code = os.environ.get("SCALE_CODE", str(ROOT))
        if code not in sys.path:
            sys.path.insert(0, code)

    def __exit__(self, *exc: object) -> None:
        return None


# -- the measurements, each run in a child process ------------------------------------
def child_cycle(db: str, now: str) -> dict[str, Any]:
    with _imports():
        from reviewer.config import config_from_dict
        from reviewer.engine import Engine
        from store.sqlite import SQLiteStore

        t0 = time.perf_counter()
        store = SQLiteStore(Path(db))
        config = config_from_dict(
            {"reviewer": {"store": f"sqlite:///{db}"}}, Path(db).parent / "config.toml"
        )
        result = Engine(config, store).review(datetime.fromisoformat(now))
        store.close()
    return {
        "seconds": time.perf_counter() - t0,
        "findings": len(result.findings),
        "status": result.status,
    }


def child_rules(db: str, now: str) -> dict[str, Any]:
    """Each enabled rule's ``check()`` alone, on the store as of ``now``."""
    with _imports():
        from reviewer.config import config_from_dict
        from rules import REGISTRY
        from store.sqlite import SQLiteStore

        store = SQLiteStore(Path(db))
        config = config_from_dict(
            {"reviewer": {"store": f"sqlite:///{db}"}}, Path(db).parent / "config.toml"
        )
        view = store.view(datetime.fromisoformat(now))
        out: dict[str, Any] = {}
        for rule in config.enabled_rules():
            t0 = time.perf_counter()
            found = sum(1 for _ in REGISTRY[rule.id].check(rule.options, view))
            out[rule.id] = [round(time.perf_counter() - t0, 3), found]
        store.close()
    return out


def child_floor(db: str, now: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    con = sqlite3.connect(db)
    window = ts(datetime.fromisoformat(now) - timedelta(days=7))
    cutoff = ts(datetime.fromisoformat(now) - timedelta(hours=6))
    con.execute("SELECT COUNT(*) FROM tasks").fetchall()
    con.execute(
        """SELECT task_type, model, executor, status, COUNT(*), SUM(duration_seconds),
                  SUM(tokens_in), SUM(cost_usd)
           FROM task_metrics GROUP BY task_type, model, executor, status"""
    ).fetchall()
    con.execute(
        "SELECT duration_seconds FROM task_metrics WHERE created_at >= ? ORDER BY duration_seconds",
        (window,),
    ).fetchall()
    con.execute(
        "SELECT id, created_at FROM tasks WHERE status = 'pending' AND created_at <= ?", (cutoff,)
    ).fetchall()
    con.close()
    return {"seconds": time.perf_counter() - t0}


def child_pandas(db: str, now: str) -> dict[str, Any]:
    import pandas as pd

    t0 = time.perf_counter()
    at = pd.Timestamp(now)
    con = sqlite3.connect(db)
    tasks = pd.read_sql(
        """SELECT id, task_type, phase, status, priority, created_at, updated_at, started_at,
                  finished_at FROM tasks""",
        con,
    )
    metrics = pd.read_sql(
        """SELECT task_id, task_type, model, executor, duration_seconds, status, created_at,
                  tokens_in, tokens_out, cost_usd FROM task_metrics""",
        con,
    )
    tests = pd.read_sql("SELECT test_id, outcome, ran_at FROM test_results", con)
    con.close()
    for col in ("created_at", "updated_at", "started_at", "finished_at"):
        tasks[col] = pd.to_datetime(tasks[col], utc=True)
    metrics["created_at"] = pd.to_datetime(metrics["created_at"], utc=True)
    tests["ran_at"] = pd.to_datetime(tests["ran_at"], utc=True)
    tasks = tasks[tasks.created_at <= at]
    out: dict[str, Any] = {}
    # stale: pending with no activity for 7 days
    pending = tasks[tasks.status == "pending"]
    activity = pending[["created_at", "updated_at"]].max(axis=1)
    out["stale"] = int((activity <= at - pd.Timedelta(days=7)).sum())
    # starved: newer tasks of the type that started, per waiting pending task
    started = tasks[tasks.started_at.notna() & (tasks.started_at <= at)]
    waiting = pending[pending.created_at <= at - pd.Timedelta(hours=6)]
    starved = 0
    for ttype, group in waiting.groupby("task_type"):
        newer = started[started.task_type == ttype].created_at.sort_values().to_numpy()
        ahead = len(newer) - newer.searchsorted(group.created_at.to_numpy(), side="right")
        starved += int((ahead >= 5).sum())
    out["starved"] = starved
    # stuck: running far beyond the type's p95
    done = metrics[metrics.status == "completed"]
    p95 = done.groupby("task_type").duration_seconds.quantile(0.95)
    running = tasks[tasks.status == "running"]
    age = (at - running.started_at).dt.total_seconds()
    out["stuck"] = int((age > 3 * running.task_type.map(p95).fillna(3600)).sum())
    # durations and error rates, last 7 days against the 30 before
    recent = metrics[metrics.created_at > at - pd.Timedelta(days=7)]
    base = metrics[
        (metrics.created_at <= at - pd.Timedelta(days=7))
        & (metrics.created_at > at - pd.Timedelta(days=37))
    ]
    out["p50_p95"] = recent.groupby("task_type").duration_seconds.quantile([0.5, 0.95]).size
    err = recent.groupby(["model", "task_type"]).status.apply(lambda s: (s == "failed").mean())
    err_base = base.groupby(["model", "task_type"]).status.apply(lambda s: (s == "failed").mean())
    out["error_rate_up"] = int((err > 2 * err_base.reindex(err.index).fillna(0) + 0.05).sum())
    # usage: hourly tokens per model, last hour against the hourly median
    hourly = metrics.set_index("created_at").groupby("model").tokens_in.resample("1h").sum()
    med = hourly.groupby(level=0).median()
    last = hourly.groupby(level=0).last()
    out["usage_spikes"] = int((last > 3 * med).sum())
    # flaky: tests that both passed and failed in the last 14 days
    t14 = tests[tests.ran_at > at - pd.Timedelta(days=14)]
    mix = t14.groupby("test_id").outcome.agg(lambda s: s.nunique())
    out["flaky"] = int((mix > 1).sum())
    out["seconds"] = time.perf_counter() - t0
    return out


def child_ingest(db: str, path: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.environ.get("SCALE_CODE", str(ROOT))}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "reviewer", "--store", f"sqlite:///{db}", "ingest", "metrics", path],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t0
    with open(path) as fh:
        records = sum(1 for _ in fh)
    err = proc.stderr[-300:]
    return {"seconds": seconds, "records": records, "rc": proc.returncode, "err": err}


def child_build(db: str, n: str, seed: str) -> dict[str, Any]:
    build(Path(db), int(n), int(seed))
    return {}


def child_add(db: str, n: str, seed: str) -> dict[str, Any]:
    add_new_data(Path(db), int(n), int(seed))
    return {}


CHILDREN = {
    "cycle": child_cycle,
    "floor": child_floor,
    "rules": child_rules,
    "pandas": child_pandas,
    "build": child_build,
    "add": child_add,
}


def in_child(kind: str, *args: str) -> dict[str, Any]:
    env = {**os.environ}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, *args],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def ingest_file(path: Path, records: int) -> None:
    rnd = random.Random(records)
    with open(path, "w") as fh:
        for i in range(records):
            fh.write(
                json.dumps(
                    {
                        "task_id": f"ingest-{i:07d}",
                        "task_type": pick(rnd, TYPES),
                        "model": pick(rnd, MODELS),
                        "executor": rnd.choice(EXECUTORS),
                        "duration_seconds": round(rnd.uniform(10, 900), 1),
                        "status": "completed" if rnd.random() < 0.9 else "failed",
                        "created_at": ts(NOW - timedelta(seconds=rnd.randint(0, 86400))),
                        "tokens_in": rnd.randint(100, 50_000),
                        "tokens_out": rnd.randint(100, 20_000),
                        "cost_usd": round(rnd.uniform(0, 1), 4),
                    }
                )
                + "\n"
            )


def measure(n: int, seed: int, work: Path) -> dict[str, Any]:
    src = cached_store(n, seed)
    db = work / f"cycle-{n}.db"
    shutil.copy(src, db)
    out: dict[str, Any] = {"tasks": n}
    out["floor"] = in_child("floor", str(db), ts(NOW))
    out["pandas"] = in_child("pandas", str(db), ts(NOW))
    out["rules"] = in_child("rules", str(db), ts(NOW))
    out["cold"] = in_child("cycle", str(db), ts(NOW))
    out["steady"] = in_child("cycle", str(db), ts(NOW))
    in_child("add", str(db), str(n), str(seed))
    out["new1"] = in_child("cycle", str(db), ts(LATER))
    records = 10_000
    jsonl = work / f"ingest-{records}.jsonl"
    if not jsonl.exists():
        ingest_file(jsonl, records)
    idb = work / f"ingest-{n}.db"
    shutil.copy(src, idb)
    out["ingest"] = in_child("ingest", str(idb), str(jsonl))
    db.unlink()
    idb.unlink()
    return out


def report_rules(rows: list[dict[str, Any]]) -> None:
    """Each rule's time per size, and how it grew against the backlog (linear: x the size)."""
    names = [k for k in rows[0]["rules"] if k != "rss_mb"]
    print(f"{'rule check s':>15} " + " ".join(f"{r['tasks']:>10}" for r in rows) + "  growth")
    for name in names:
        times = [r["rules"][name][0] for r in rows]
        growth = ""
        if len(rows) > 1 and times[-2] > 0.05:
            size = rows[-1]["tasks"] / rows[-2]["tasks"]
            growth = f"  x{times[-1] / times[-2]:.1f} for x{size:.0f} tasks"
        print(f"{name:>15} " + " ".join(f"{t:>10.2f}" for t in times) + growth)


def report(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'tasks':>9} {'floor s':>8} {'pandas s':>8} {'cycle':>7} {'s':>8} {'/floor':>8}"
        f" {'/pandas':>8} {'RSS MB':>7} {'findings':>8}"
    )
    for r in rows:
        f, p = r["floor"]["seconds"], r["pandas"]["seconds"]
        first = True
        for key, name in (("cold", "cold"), ("steady", "steady"), ("new1", "+1%")):
            c = r[key]
            lead = f"{r['tasks']:>9} {f:>8.2f} {p:>8.2f}" if first else f"{'':>9} {'':>8} {'':>8}"
            first = False
            print(
                f"{lead} {name:>7} {c['seconds']:>8.2f} {c['seconds'] / f:>7.1f}x"
                f" {c['seconds'] / p:>7.2f}x {c['rss_mb']:>7.0f} {c['findings']:>8}"
            )
        ing = r["ingest"]
        rate = ing["records"] / ing["seconds"]
        print(
            f"{'':>9} pandas RSS {r['pandas']['rss_mb']:.0f} MB; floor RSS "
            f"{r['floor']['rss_mb']:.0f} MB; CLI ingest of {ing['records']} metrics: "
            f"{ing['seconds']:.2f} s = {rate:,.0f} records/s"
            + ("" if ing["rc"] == 0 else f" (exit {ing['rc']}: {ing['err']!r})")
        )
    report_rules(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="task counts, comma-separated")
    parser.add_argument("--million", action="store_true", help="also 10^6 tasks (slow)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--code", help="import the reviewer from this checkout instead")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        fn = child_ingest if kind == "ingest" else CHILDREN[kind]
        result = fn(*rest)
        result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if kind == "ingest":  # the CLI is a grandchild
            result["rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(json.dumps(result))
        return
    if args.code:
        os.environ["SCALE_CODE"] = str(Path(args.code).resolve())
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.million:
        sizes.append(1_000_000)
    print(f"code: {os.environ.get('SCALE_CODE', ROOT)}; load average {os.getloadavg()[0]:.1f}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            rows.append(measure(n, args.seed, Path(tmp)))
            report(rows)  # after each size, so a long run shows what it has
            sys.stdout.flush()


if __name__ == "__main__":
    main()
