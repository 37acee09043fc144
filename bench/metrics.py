"""Time the pipeline metrics on SQLite stores of 10^4, 10^5 and 10^6 metric rows.

Usage: ``python bench/metrics.py [--sizes 10000,100000,1000000] [--repeat 5] [--dir /tmp]``

Builds each store once (seeded random data, bulk insert; reused on the next
run), then prints the median wall time in ms of: the metrics computation with
no filter, with a model filter, with a time range, with all filters; the A/B
comparison by prompt_variant; and ``GET /api/agent/metrics`` through FastAPI's
TestClient.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reviewer.metrics import pipeline_metrics
from store import METRIC_COLUMNS, MetricFilter
from store.sqlite import SQLiteStore
from store.timeutil import fmt_ts

NOW = datetime(2026, 3, 1, tzinfo=UTC)
TYPES = ["spec", "impl", "review", "test", "heal"]
MODELS = ["cursor/auto", "cursor/composer-1", "claude", "gpt"]
EXECUTORS = ["runner-1", "runner-2", "runner-3"]
VARIANTS = ["A", "B", None]


def build(path: Path, n: int) -> None:
    """A store with ``n`` metric rows over the 90 days before NOW."""
    if path.exists():
        return
    store = SQLiteStore(str(path))
    rnd = random.Random(n)
    span = 90 * 86400
    cols = ", ".join(METRIC_COLUMNS)
    marks = ", ".join("?" for _ in METRIC_COLUMNS)
    conn = store.conn
    conn.execute("BEGIN")
    batch = []
    for i in range(n):
        at = fmt_ts(NOW - timedelta(seconds=span * i / n))
        ok = rnd.random() < 0.85
        batch.append(
            (
                f"t{i // 2}",
                rnd.choice(TYPES),
                rnd.choice(MODELS),
                rnd.choice(EXECUTORS),
                round(rnd.lognormvariate(3.8, 0.6), 2),
                "completed" if ok else "failed",
                at,
                rnd.choice(VARIANTS),
                None,
                rnd.randint(500, 5000),
                rnd.randint(100, 2000),
                round(rnd.random() * 0.2, 4),
                rnd.randint(1, 20),
                None,
                None,
            )
        )
        if len(batch) >= 50_000:
            conn.executemany(f"INSERT OR IGNORE INTO task_metrics ({cols}) VALUES ({marks})", batch)
            batch.clear()
    conn.executemany(f"INSERT OR IGNORE INTO task_metrics ({cols}) VALUES ({marks})", batch)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    store.close()


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm the page cache
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default="/tmp")
    args = parser.parse_args()

    print(f"{'rows':>9}  {'query':<22} {'median ms':>10}")
    for size in (int(s) for s in args.sizes.split(",")):
        path = Path(args.dir) / f"reviewer-bench-metrics-{size}.db"
        t0 = time.perf_counter()
        build(path, size)
        built = time.perf_counter() - t0
        if built > 1:
            print(f"{size:>9}  (built in {built:.1f}s)")
        bench_store(path, size, args.repeat)


def bench_store(path: Path, size: int, repeat: int) -> None:
    """Time every figure on one store and print a line each."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from reviewer.api.agent_metrics import router
    from reviewer.app import App
    from reviewer.config import config_from_dict
    from reviewer.experiments import compare_arms

    filters = {
        "none": MetricFilter(),
        "model": MetricFilter(model="claude"),
        "last 7d": MetricFilter(since=fmt_ts(NOW - timedelta(days=7))),
        "all": MetricFilter(
            since=fmt_ts(NOW - timedelta(days=30)),
            until=fmt_ts(NOW),
            task_type="impl",
            model="claude",
            executor="runner-1",
        ),
    }
    store = SQLiteStore(str(path))
    view = store.view(NOW)
    for name, f in filters.items():
        ms = timed(lambda f=f: pipeline_metrics(view, f), repeat)
        print(f"{size:>9}  metrics {name:<14} {ms:>10.1f}")
    cfg = config_from_dict({})
    ms = timed(lambda: compare_arms(view, "prompt_variant", config=cfg), repeat)
    print(f"{size:>9}  ab prompt_variant       {ms:>10.1f}")
    api = FastAPI()
    api.state.reviewer = App(cfg, store, clock=lambda: NOW)
    api.include_router(router)
    client = TestClient(api)
    ms = timed(lambda: client.get("/api/agent/metrics").raise_for_status(), repeat)
    print(f"{size:>9}  GET /api/agent/metrics {ms:>10.1f}")
    ms = timed(
        lambda: client.get("/api/agent/metrics", params={"model": "claude"}).raise_for_status(),
        repeat,
    )
    print(f"{size:>9}  GET ...?model=claude   {ms:>10.1f}")
    store.close()


if __name__ == "__main__":
    main()
