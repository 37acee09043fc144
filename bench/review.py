"""Review cycle time: one full review of simulated pipelines of growing size.

    python bench/review.py [--sizes 80,300,1000] [--days 28] [--rules all|ID,ID]

For each size (tasks per day) it builds a seeded four-week history with every
kind of problem (``reviewer.sim``) in a fresh SQLite file, then times:
the first review cycle (every finding new, proposals created), a second
cycle on unchanged data (the daemon's steady state), and each rule's
``check()`` alone. Figures are wall-clock seconds on this machine; run it on
a quiet machine and read the medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reviewer.config import config_from_dict
from reviewer.engine import Engine
from reviewer.sim import simulate
from rules import REGISTRY
from store.sqlite import SQLiteStore


def bench(tasks_per_day: int, days: int, rule_ids: list[str], repeat: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        store = SQLiteStore(base / "pipeline.db")
        t0 = time.perf_counter()
        labels = simulate(
            store,
            workspace=base / "ws",
            seed=7,
            days=days,
            tasks_per_day=tasks_per_day,
            problems=True,
        )
        built = time.perf_counter() - t0
        counts = {
            t: store.query(f"SELECT COUNT(*) AS n FROM {t}")[0]["n"]
            for t in ("tasks", "task_metrics", "test_results")
        }
        data = labels.config(f"sqlite:///{base / 'pipeline.db'}", approval="manual", auto=[])
        data["rules"] = {
            r: {**data.get("rules", {}).get(r, {}), "enabled": r in rule_ids} for r in REGISTRY
        }
        data["reviewer"]["specs_dir"] = str(labels.specs_dir)
        data["reviewer"]["repo_dir"] = str(labels.repo_dir)
        config = config_from_dict(data, base / "config.toml")
        from store.workspace import Workspace

        store.workspace = Workspace(specs_dir=labels.specs_dir, repo_dir=labels.repo_dir)
        engine = Engine(config, store)
        now = labels.end
        t0 = time.perf_counter()
        first = engine.review(now)
        first_s = time.perf_counter() - t0
        steady = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            engine.review(now)
            steady.append(time.perf_counter() - t0)
        per_rule = {}
        view = store.view(now)
        for rule_id in rule_ids:
            module = REGISTRY[rule_id]
            options = config.rules[rule_id].options
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                list(module.check(options, view))
                times.append(time.perf_counter() - t0)
            per_rule[rule_id] = statistics.median(times)
        store.close()
        return {
            "tasks_per_day": tasks_per_day,
            "rows": counts,
            "build_s": built,
            "findings": len(first.findings),
            "first_cycle_s": first_s,
            "steady_cycle_s": statistics.median(steady),
            "per_rule_s": per_rule,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="80,300,1000")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--rules", default="all")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rule_ids = list(REGISTRY) if args.rules == "all" else args.rules.split(",")
    print(
        f"{'tasks/day':>9} {'tasks':>7} {'metrics':>8} {'tests':>8} {'build s':>8} "
        f"{'findings':>8} {'1st cycle s':>11} {'steady s':>9}  slowest rules"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        r = bench(size, args.days, rule_ids, args.repeat)
        rows = r["rows"]
        per_rule = r["per_rule_s"]
        assert isinstance(rows, dict) and isinstance(per_rule, dict)
        slow = ", ".join(
            f"{k} {v:.2f}" for k, v in sorted(per_rule.items(), key=lambda kv: -kv[1])[:3]
        )
        print(
            f"{size:>9} {rows['tasks']:>7} {rows['task_metrics']:>8} {rows['test_results']:>8} "
            f"{r['build_s']:>8.1f} {r['findings']:>8} {r['first_cycle_s']:>11.2f} "
            f"{r['steady_cycle_s']:>9.2f}  {slow}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
