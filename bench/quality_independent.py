"""Detection quality on the independent family of pipeline histories (issue 8).

``bench/indep_pipelines.py`` writes four-week histories at 5, 20, 80, 300 and
1000 tasks a weekday, with every documented kind of problem injected, and a
clean twin of each (same seed, nothing injected). ``bench/indep_labels.py``
says from the records alone when each problem held, by the documented
definitions. The real rules are replayed with ``reviewer.backtest`` over the
last ``--window`` every ``--step``; findings are matched to labels by (rule,
kind, subject) and scored like ``bench/quality.py``. The goal: no finding on any
clean history, every injected problem found with the right kind.

    python bench/quality.py --family independent [--sizes 5,20,80,300,1000] [--seeds 1]
    python bench/quality_independent.py ...   # the same

Imports the reviewer only through its public package names; run it against
another checkout with ``cd CHECKOUT && PYTHONPATH=$PWD python PATH/TO/bench/quality.py
--family independent``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import indep_labels
import indep_pipelines

SIZES = [5, 20, 80, 300, 1000]


def _duration(text: str) -> timedelta:
    units = {"m": 60, "h": 3600, "d": 86400}
    return timedelta(seconds=float(text[:-1]) * units[text[-1]])


def run_history(
    workdir: Path, history: indep_pipelines.History, window: timedelta, step: timedelta
) -> tuple[list[dict[str, Any]], float, float]:
    """Write one history into a fresh store and backtest the rules over its last ``window``."""
    from reviewer.app import App
    from reviewer.backtest import backtest
    from reviewer.config import config_from_dict
    from store import SQLiteStore

    t0 = time.monotonic()
    db = workdir / "store.db"
    (workdir / "specs").mkdir(exist_ok=True)
    with SQLiteStore(db) as store:
        history.write(store)
    built = time.monotonic() - t0
    config = config_from_dict(
        history.config(f"sqlite:///{db}", str(workdir)), workdir / "config.toml"
    )
    t1 = time.monotonic()
    with App.from_config(config) as app:
        events = backtest(app.engine, history.end - window, history.end, step)
    return events, built, time.monotonic() - t1


def main(argv: list[str] | None = None) -> int:
    from quality import Score, score  # the same matching and scoring as the simulated family

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="tasks a weekday")
    parser.add_argument("--seeds", type=int, default=1, help="histories per size")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--window", default="36h", help="backtest the history's last WINDOW")
    parser.add_argument("--step", default="2h", help="time between replayed reviews")
    parser.add_argument("--grid", default="15m", help="labeller's resolution")
    parser.add_argument("--no-clean", action="store_true", help="skip the clean twins")
    parser.add_argument("--details", action="store_true", help="list misses and false alarms")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    window, step, grid = _duration(args.window), _duration(args.step), _duration(args.grid)

    scores: dict[tuple[str, str], Score] = defaultdict(Score)
    clean_findings: list[dict[str, Any]] = []
    clean_by_size: dict[int, int] = defaultdict(int)
    clean_labels: list[str] = []
    timings = []
    for size in sizes:
        for seed in range(args.seeds):
            for problems in (True, False) if not args.no_clean else (True,):
                where = f"{size}/day/seed={seed}/{'problems' if problems else 'clean'}"
                history = indep_pipelines.generate(seed, size, days=args.days, problems=problems)
                start = history.end - window
                grid_at = [start + k * grid for k in range(int(window / grid) + 1)]
                t0 = time.monotonic()
                labels = indep_labels.label(history, grid_at)
                labelled = time.monotonic() - t0
                with tempfile.TemporaryDirectory(prefix="reviewer-indep-") as tmp:
                    events, built, replayed = run_history(Path(tmp), history, window, step)
                instants = [
                    indep_pipelines.ts(start + k * step) for k in range(int(window / step) + 1)
                ]
                timings.append(
                    {
                        "history": where,
                        "label_s": round(labelled, 1),
                        "build_s": round(built, 1),
                        "replay_s": round(replayed, 1),
                    }
                )
                print(
                    f"{where}: {len(history.tasks)} tasks, {len(history.metrics)} runs, "
                    f"{len(labels)} labels, {len(events)} findings, label {labelled:.1f}s, "
                    f"build {built:.1f}s, replay {replayed:.1f}s",
                    file=sys.stderr,
                )
                if problems:
                    score(scores, _Labels(labels), events, instants, where)
                else:
                    clean_labels += [f"{where}: {lb.kind} {lb.subject}" for lb in labels]
                    for e in events:
                        scores[(e["rule"], e["kind"])].clean += 1
                        clean_by_size[size] += 1
                        keep = {k: e[k] for k in ("rule", "kind", "subject", "summary")}
                        clean_findings.append(
                            {"where": where, "first_fired_at": e["first_fired_at"], **keep}
                        )

    kinds = list(indep_labels.ALL_KINDS) + sorted(
        k for k in scores if k not in indep_labels.ALL_KINDS
    )
    print()
    print("family: independent (bench/indep_pipelines.py, labels by bench/indep_labels.py)")
    head = f"{'rule':<14} {'kind':<19} {'labels':>6} {'found':>6} {'prec':>6} {'recall':>6}"
    print(head + f" {'ttd_h':>6} {'clean':>6} {'unseen':>6}")
    summary: dict[str, Any] = {}

    def cell(v: Any) -> str:
        return "-" if v is None else str(v)

    judged = set(indep_labels.ALL_KINDS)
    for rule, kind in kinds:
        row = scores[(rule, kind)].row()
        if (rule, kind) not in judged:
            # Kinds of rules written after this labeller: it does not judge them, so their
            # findings on problem histories are neither hits nor false alarms. Findings on
            # clean twins still count against them.
            row = {**row, "labels": None, "precision": None, "recall": None, "judged": False}
        summary[f"{rule}/{kind}"] = row
        print(
            f"{rule:<14} {kind:<19} {cell(row['labels']):>6} {row['findings']:>6} "
            f"{cell(row['precision']):>6} {cell(row['recall']):>6} "
            f"{cell(row['median_ttd_h']):>6} {row['clean_findings']:>6} {row['unseen']:>6}"
            + ("" if (rule, kind) in judged else "  (not judged by the labeller)")
        )
    if not args.no_clean:
        print(
            "clean-history findings by throughput: "
            + ", ".join(f"{s}/day: {clean_by_size.get(s, 0)}" for s in sizes)
        )
    if clean_labels:
        print("WARNING: the labeller found problems in clean twins (generator bug):")
        for c in clean_labels:
            print(f"  {c}")
    if args.details:
        for (rule, kind), s in sorted(scores.items()):
            for m in s.missed:
                print(f"missed  {rule}/{kind}: {m}")
            for f in s.false:
                tag = "false  " if (rule, kind) in judged else "unjudged"
                print(f"{tag} {rule}/{kind}: {f['where']}: {f['subject']}: {f['summary']}")
        for c in clean_findings:
            print(
                f"clean   {c['rule']}/{c['kind']}: {c['where']}: {c['subject']} "
                f"(from {c['first_fired_at']}): {c['summary']}"
            )
    print(
        json.dumps(
            {
                "family": "independent",
                "sizes": sizes,
                "seeds": args.seeds,
                "window": args.window,
                "step": args.step,
                "scores": summary,
                "clean_findings": len(clean_findings),
                "clean_by_size": clean_by_size,
                "timings": timings,
            }
        )
    )
    return 0


class _Labels:
    """What ``quality.score`` reads of a history's labels."""

    def __init__(self, labels: list[indep_labels.Label]) -> None:
        self.labels = labels


if __name__ == "__main__":
    sys.exit(main())
