"""flaky-tests on published flake rates: precision and recall on tests a person would call flaky.

    python bench/flaky_rates.py [--seeds 3] [--commits 10] [--reruns 5]
                                [--rates PATH/tso-flake-rate.csv]

Real flake rates are tiny and heavy-tailed. In the rerun study behind the
issue (456 flaky Java tests), the median flaky test failed in 0.5% of its
reruns, 90% in under 5%, and under 1% failed more often than they passed.
Without ``--rates`` each flaky test's failure rate is drawn from a
log-normal fitted to those quantiles: median 0.005 gives mu = ln 0.005, and
the 90th percentile 0.05 gives sigma = ln(10) / z(0.9) = 1.80; then P(rate >
0.5) = 0.5%, under 1% as published. (A beta fitted to the same quantiles
has a far thinner upper tail.)

``--rates`` takes the published per-test data instead: ``tso-flake-rate.csv``
of https://github.com/TestingResearchIllinois/rerunning-no-tests (directory
``azure-data/rq-data/flake-rates``; rows ``slug,sha,test_name,module_path,
summarized_test_result,num_runs,num_pass,num_error,num_fail``, 4000 test-suite
runs per test): each flaky test takes the failure rate ``(error + fail) /
runs`` of a test drawn from the file. The data is not part of this repo.

Each history has ``--commits`` commits, each run ``--reruns`` times (one CI
run an hour), over a suite of flaky tests, broken tests (failing every run
from the first commit, or from a commit in the middle on) and stable tests,
with failure messages that vary the way real ones do (ports, timings, ids).
It is ingested into a SQLite store and replayed with the backtest engine
(flaky-tests alone, default options) over the last 6 hours.

The label needs no rule: a test is flaky when it both passed and failed on
one commit in the history. The rule is scored on the tests still reported at
the end; "broken called flaky" counts always-failing tests it called flaky.
A plain baseline runs beside it: every test that both passed and failed on
one commit in its last 30 runs.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import norm

from reviewer.app import App
from reviewer.backtest import backtest
from reviewer.config import config_from_dict
from rules import REGISTRY
from store.sqlite import SQLiteStore
from store.timeutil import fmt_ts

START = datetime(2026, 3, 2, tzinfo=UTC)
MU = math.log(0.005)
SIGMA = math.log(10) / float(norm.ppf(0.9))
MESSAGES = [
    "java.net.BindException: Address already in use (port {n})",
    "java.util.concurrent.TimeoutException: waited {n} ms",
    "AssertionError: expected:<{n}> but was:<{m}>",
    "org.junit.ComparisonFailure: expected [ready] but was [starting] after {n} ms",
    "java.lang.NullPointerException at Worker.run(Worker.java:{n})",
    "java.net.SocketTimeoutException: Read timed out after {n} ms",
]


def published_rates(path: Path) -> list[float]:
    rates = []
    with path.open(newline="") as fh:
        for row in csv.reader(fh):
            if len(row) < 9 or not row[5].isdigit():
                continue
            runs, errors, fails = int(row[5]), int(row[7]), int(row[8])
            if runs and errors + fails:
                rates.append((errors + fails) / runs)
    if not rates:
        raise SystemExit(
            f"{path}: no flaky test rows (slug,sha,test,module,result,runs,pass,error,fail)"
        )
    return rates


def draw_rates(rng: np.random.Generator, n: int, published: list[float] | None) -> np.ndarray:
    if published:
        return rng.choice(np.array(published), size=n)
    return np.clip(rng.lognormal(MU, SIGMA, size=n), 1e-4, 0.99)


def _message(rng: np.random.Generator) -> str:
    text = MESSAGES[int(rng.integers(len(MESSAGES)))]
    return text.format(n=int(rng.integers(1000, 65000)), m=int(rng.integers(0, 99)))


def history(
    rng: np.random.Generator, args: argparse.Namespace, published: list[float] | None
) -> tuple[list[dict[str, Any]], set[str], datetime]:
    """The CI results and the broken tests' ids."""
    rates = draw_rates(rng, args.flaky, published)
    rows: list[dict[str, Any]] = []
    broken = {f"com.example.broken.B{i}::test_{i}" for i in range(args.broken)}
    runs = args.commits * args.reruns
    for k in range(runs):
        commit = f"{k // args.reruns:040x}"[-40:].replace("0", "a", 1)

        def add(test: str, failed: bool, k: int = k, commit: str = commit) -> None:
            rows.append({
                "run_id": f"ci-{k:05d}", "test_id": test, "classname": test.split("::")[0],
                "name": test.split("::")[1], "commit_sha": commit,
                "ran_at": fmt_ts(START + timedelta(hours=k)),
                "outcome": "failed" if failed else "passed",
                "message": _message(rng) if failed else None,
            })  # fmt: skip

        for i, p in enumerate(rates):
            add(f"com.example.flaky.F{i}::test_{i}", bool(rng.random() < p))
        for i in range(args.broken):
            # half fail from the first commit, half from a commit in the middle on
            breaks_at = 0 if i % 2 == 0 else (args.commits // 2) * args.reruns
            add(f"com.example.broken.B{i}::test_{i}", k >= breaks_at)
        for i in range(args.stable):
            add(f"com.example.stable.S{i}::test_{i}", False)
    return rows, broken, START + timedelta(hours=runs)


def _mixed(store: SQLiteStore, last: int | None) -> set[str]:
    """Tests that both passed and failed on one commit (in their last ``last`` runs)."""
    limit = f"WHERE rn <= {int(last)}" if last else ""
    rows = store.query(
        f"""SELECT test_id FROM (
              SELECT test_id, commit_sha, outcome,
                     ROW_NUMBER() OVER (PARTITION BY test_id ORDER BY ran_at DESC) AS rn
              FROM test_results) r {limit}
            GROUP BY test_id, commit_sha
            HAVING SUM(outcome = 'passed') > 0 AND SUM(outcome = 'failed') > 0"""
    )
    return {r["test_id"] for r in rows}


def score(found: set[str], labelled: set[str], broken: set[str]) -> dict[str, float]:
    hits = len(found & labelled)
    return {
        "labels": len(labelled),
        "found": len(found),
        "precision": hits / len(found) if found else 1.0,
        "recall": hits / len(labelled) if labelled else 1.0,
        "broken_called_flaky": len(found & broken),
    }


def run_once(seed: int, args: argparse.Namespace, published: list[float] | None) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    rows, broken, end = history(rng, args, published)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ci.db"
        with SQLiteStore(db) as store:
            store.upsert_test_results(rows)
            labelled = _mixed(store, None)
            baseline = _mixed(store, 30)
        only = {r: {"enabled": r == "flaky-tests"} for r in REGISTRY}
        config = config_from_dict(
            {"reviewer": {"store": f"sqlite:///{db}", "max_new_proposals_per_cycle": 10000},
             "rules": only},
            Path(tmp) / "config.toml",
        )  # fmt: skip
        with App.from_config(config) as app:
            events = backtest(app.engine, end - timedelta(hours=6), end, timedelta(hours=1))
    flaky = {e["subject"] for e in events if e["kind"] == "flaky" and e["cleared_at"] is None}
    return {"rule": score(flaky, labelled, broken), "baseline": score(baseline, labelled, broken)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--commits", type=int, default=10)
    parser.add_argument("--reruns", type=int, default=5)
    parser.add_argument("--flaky", type=int, default=200)
    parser.add_argument("--broken", type=int, default=20)
    parser.add_argument("--stable", type=int, default=300)
    parser.add_argument("--rates", type=Path, help="tso-flake-rate.csv (see the docstring)")
    args = parser.parse_args(argv)
    published = None
    if args.rates is not None:
        if not args.rates.is_file():
            parser.error(
                f"{args.rates} not found: get tso-flake-rate.csv from "
                "https://github.com/TestingResearchIllinois/rerunning-no-tests "
                "(azure-data/rq-data/flake-rates/)"
            )
        published = published_rates(args.rates)
        source = f"{len(published)} published per-test rates ({args.rates.name})"
    else:
        tail = 1 - float(norm.cdf((math.log(0.5) - MU) / SIGMA))
        source = (
            f"log-normal mu={MU:.2f} sigma={SIGMA:.2f} (median 0.5%, p90 5%, "
            f"P(rate>0.5)={tail:.2%})"
        )
    print(f"flaky rates: {source}; {args.commits} commits x {args.reruns} runs; "
          f"{args.flaky} flaky, {args.broken} broken, {args.stable} stable tests")  # fmt: skip
    print(f"{'seed':>4} {'detector':<9} {'labels':>6} {'found':>6} {'prec':>6} {'recall':>6} "
          f"{'broken→flaky':>12}")  # fmt: skip
    totals: dict[str, list[dict[str, float]]] = {"rule": [], "baseline": []}
    for seed in range(args.seeds):
        result = run_once(seed, args, published)
        for name in ("rule", "baseline"):
            s = result[name]
            totals[name].append(s)
            print(f"{seed:>4} {name:<9} {s['labels']:>6} {s['found']:>6} {s['precision']:>6.3f} "
                  f"{s['recall']:>6.3f} {s['broken_called_flaky']:>12}")  # fmt: skip
    for name, rows in totals.items():
        prec = sum(r["precision"] for r in rows) / len(rows)
        rec = sum(r["recall"] for r in rows) / len(rows)
        bad = sum(r["broken_called_flaky"] for r in rows)
        print(f" all {name:<9} {'':>6} {'':>6} {prec:>6.3f} {rec:>6.3f} {bad:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
