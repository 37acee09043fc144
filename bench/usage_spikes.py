"""usage-spikes on simulated pipelines: precision and recall per kind over seeds, and speed.

    python bench/usage_spikes.py [--seeds 1 2 3 ...] [--rows 200000]

Uses the simulation of bench/spike_sim.py (daily and weekly rhythm,
Poisson task counts, log-normal usage per task, runaway tasks, retry storms of
several hours, one-hour bursts that must not fire). ``budget`` is scored
against the spend recomputed from the raw rows at every review.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.spike_sim import START, clean_rows, history_store, score_detection, simulate
from rules import usage_spikes
from store.timeutil import fmt_ts
from tests.support import make_store, metric_rows


def quality(seeds: list[int]) -> None:
    totals: dict[str, list[float]] = {}
    for seed in seeds:
        p = simulate(days=35, base_rate=8.0, seed=seed)
        store = history_store(p)
        try:
            figures = score_detection(p, store, usage_spikes.Options(), budgets=True)
        finally:
            store.close()
        print(
            f"seed {seed}: {len(p.rows)} rows, " + ", ".join(f"{k}={v}" for k, v in figures.items())
        )
        for k, v in figures.items():
            totals.setdefault(k, []).append(v)
    sums = {k: sum(v) for k, v in totals.items()}
    for kind in ("outlier", "spike", "budget"):
        tp, fp, due, hit = (sums[f"{kind}_{x}"] for x in ("tp", "fp", "due", "hit"))
        print(
            f"{kind:8} precision {tp / max(tp + fp, 1):.3f} ({tp:.0f}/{tp + fp:.0f})"
            f"  recall {hit / max(due, 1):.3f} ({hit:.0f}/{due:.0f})"
        )


def clean(seeds: list[int]) -> None:
    for seed in seeds:
        p = simulate(days=30, base_rate=8.0, seed=seed)
        store = make_store()
        try:
            store.upsert_metrics(metric_rows(clean_rows(p)))
            end = START + timedelta(days=30)
            seen = []
            for k in range(0, 7 * 24, 3):
                now = end - timedelta(days=7) + k * timedelta(hours=1) + timedelta(minutes=5)
                seen += list(usage_spikes.check(usage_spikes.Options(), store.view(fmt_ts(now))))
        finally:
            store.close()
        print(f"clean seed {seed}: {len(seen)} findings", [f.summary for f in seen][:3])


def speed(rows: int) -> None:
    # base_rate scales the row count; 30 days of the simulated rhythm.
    p = simulate(days=30, base_rate=8.0 * rows / 11_300, seed=3)
    store = history_store(p)
    try:
        for minutes in (55, 5):
            now = fmt_ts(START + timedelta(days=30) - timedelta(minutes=minutes))
            t0 = time.perf_counter()
            found = list(usage_spikes.check(usage_spikes.Options(), store.view(now)))
            print(
                f"check() on {len(p.rows)} metric rows over 30 days: "
                f"{time.perf_counter() - t0:.2f}s, {len(found)} findings"
            )
    finally:
        store.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5, 6, 7, 8])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--skip", nargs="*", default=[])
    a = ap.parse_args()
    if "quality" not in a.skip:
        quality(a.seeds)
    if "clean" not in a.skip:
        clean(a.seeds)
    if "speed" not in a.skip:
        speed(a.rows)
