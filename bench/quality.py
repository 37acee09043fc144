"""Detection quality of the rule modules on labelled, simulated pipeline histories.

For each size (tasks per day), noise level and seed, ``reviewer.sim``
writes one history with every kind of problem injected at a known subject and
time, and one clean history. The real rules are replayed over the end of each
history with ``reviewer.backtest`` (what the daemon would have reported at each
step), and each finding is matched to a label by (rule, kind, subject).

Per rule and kind it prints precision, recall, the median time to detect
(first firing minus the label's start, or minus the window's start when the
problem began before the window) and the findings on clean histories, which
should be none. A problem that held at none of the replayed instants (labels
carry the spans a problem held) is counted as ``unseen`` and left out of
recall: the daemon would see it, a replay every ``--step`` cannot. The last
line is a JSON summary.

    python bench/quality.py [--sizes small,medium,large] [--seeds 2] [--noise 0.3,0.8]

``--family independent`` scores a second family written by other hands
(``bench/quality_independent.py``: 5-1000 tasks a day, clean twins).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reviewer.app import App
from reviewer.backtest import backtest
from reviewer.config import config_from_dict
from rules import REGISTRY
from store.sqlite import SQLiteStore
from store.timeutil import parse_duration, parse_ts

if TYPE_CHECKING:
    from reviewer.sim import Labels
# reviewer.sim is imported where the simulated family runs, so --family independent
# also runs against checkouts whose simulator lives elsewhere

SIZES = {"small": 20, "medium": 80, "large": 300}
Key = tuple[str, str]


@dataclass
class Score:
    """Counts for one (rule, kind) over every history."""

    labels: int = 0
    findings: int = 0
    hits: int = 0
    found_labels: int = 0
    ttd_hours: list[float] = field(default_factory=list)
    clean: int = 0
    unseen: int = 0  # labels that held at no replayed instant (came and went between two)
    false: list[dict[str, Any]] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "findings": self.findings,
            "precision": round(self.hits / self.findings, 3) if self.findings else None,
            "recall": round(self.found_labels / self.labels, 3) if self.labels else None,
            "median_ttd_h": round(statistics.median(self.ttd_hours), 1) if self.ttd_hours else None,
            "clean_findings": self.clean,
            "unseen": self.unseen,
        }


def run_history(
    workdir: Path,
    *,
    seed: int,
    tasks_per_day: int,
    noise: float,
    problems: bool,
    days: int,
    window: timedelta,
    step: timedelta,
) -> tuple[Labels, list[dict[str, Any]], float, float]:
    """Simulate one history and backtest the rules over its last ``window``."""
    t0 = time.monotonic()
    db = workdir / "store.db"
    with SQLiteStore(db) as store:
        from sim_labels import simulate_labelled

        labels = simulate_labelled(
            store,
            workspace=workdir,
            seed=seed,
            days=days,
            tasks_per_day=tasks_per_day,
            noise=noise,
            problems=problems,
        )
    built = time.monotonic() - t0
    config = config_from_dict(labels.config(f"sqlite:///{db}"), workdir / "config.toml")
    t1 = time.monotonic()
    with App.from_config(config) as app:
        events = backtest(app.engine, labels.end - window, labels.end, step)
    return labels, events, built, time.monotonic() - t1


def score(
    scores: dict[Key, Score],
    labels: Labels,
    events: list[dict[str, Any]],
    instants: list[str],
    where: str,
) -> None:
    """Add one history with problems to the per-kind scores.

    ``instants`` are the replayed reviews. A problem that held at none of them (a
    circuit breaker open for an hour between two 2-hourly replays, or closed
    before the window) is counted as unseen, not missed: the daemon, reviewing
    every 15 minutes, would see it, but this replay cannot.
    """
    by_key = {label.key: label for label in labels.labels}
    fired: dict[tuple[str, str, str], str] = {}
    for e in events:
        key = (e["rule"], e["kind"], e["subject"])
        if key not in fired or e["first_fired_at"] < fired[key]:
            fired[key] = e["first_fired_at"]
    for label in labels.labels:
        s = scores[(label.rule, label.kind)]
        seen = [i for i in instants if label.seen_at(i)]
        if not seen:
            s.unseen += 1
            continue
        s.labels += 1
        if label.key in fired:
            s.found_labels += 1
            # from the start of the episode first seen, or of the window if earlier
            began = next(
                (a for a, b in label.episodes if a <= seen[0] and (b is None or seen[0] < b)),
                label.started_at,
            )
            began = max(began, instants[0])
            hours = (parse_ts(fired[label.key]) - parse_ts(began)).total_seconds() / 3600
            s.ttd_hours.append(hours)
        else:
            s.missed.append(f"{where}: {label.subject} (from {label.started_at})")
    for e in events:
        key = (e["rule"], e["kind"], e["subject"])
        if fired.get(key) != e["first_fired_at"]:
            continue  # one finding per (rule, kind, subject)
        s = scores[(e["rule"], e["kind"])]
        s.findings += 1
        if key in by_key:
            s.hits += 1
        else:
            s.false.append({"where": where, "subject": e["subject"], "summary": e["summary"]})
        fired[key] = ""  # counted


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    family = argparse.ArgumentParser(add_help=False)
    family.add_argument("--family", choices=["simulated", "independent"], default="simulated")
    known, rest = family.parse_known_args(argv)
    if known.family == "independent":
        # the second, independently written family (bench/quality_independent.py)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from quality_independent import main as independent

        return independent(rest)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--family",
        choices=["simulated", "independent"],
        default="simulated",
        help="simulated: reviewer.simulate's histories; independent: bench/indep_pipelines.py",
    )
    parser.add_argument("--sizes", default="small,medium,large", help="of " + ", ".join(SIZES))
    parser.add_argument("--seeds", type=int, default=1, help="histories per size and noise")
    parser.add_argument("--noise", default="0.3,0.8", help="noise levels, 0 (calm) to 1")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--window", default="24h", help="backtest the history's last WINDOW")
    parser.add_argument("--step", default="2h", help="time between replayed reviews")
    parser.add_argument("--no-clean", action="store_true", help="skip the clean histories")
    parser.add_argument("--details", action="store_true", help="list misses and false alarms")
    args = parser.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size {unknown[0]!r}; known: {', '.join(SIZES)}")
    noises = [float(x) for x in args.noise.split(",")]
    window, step = parse_duration(args.window), parse_duration(args.step)

    scores: dict[Key, Score] = defaultdict(Score)
    clean_findings: list[dict[str, Any]] = []
    timings: list[dict[str, Any]] = []
    for size in sizes:
        for noise in noises:
            for seed in range(args.seeds):
                for problems in (True, False) if not args.no_clean else (True,):
                    where = (
                        f"{size}/noise={noise}/seed={seed}/{'problems' if problems else 'clean'}"
                    )
                    with tempfile.TemporaryDirectory(prefix="reviewer-bench-") as tmp:
                        labels, events, built, replayed = run_history(
                            Path(tmp),
                            seed=seed,
                            tasks_per_day=SIZES[size],
                            noise=noise,
                            problems=problems,
                            days=args.days,
                            window=window,
                            step=step,
                        )
                    instants = [
                        (labels.end - window + k * step).strftime("%Y-%m-%dT%H:%M:%SZ")
                        for k in range(int(window / step) + 1)
                    ]
                    timings.append(
                        {
                            "history": where,
                            "build_s": round(built, 1),
                            "replay_s": round(replayed, 1),
                        }
                    )
                    print(
                        f"{where}: {labels.counts['tasks']} tasks, {len(events)} findings, "
                        f"build {built:.1f}s, replay {replayed:.1f}s",
                        file=sys.stderr,
                    )
                    if problems:
                        score(scores, labels, events, instants, where)
                    else:
                        for e in events:
                            scores[(e["rule"], e["kind"])].clean += 1
                            keep = {k: e[k] for k in ("rule", "kind", "subject", "summary")}
                            clean_findings.append({"where": where, **keep})

    from reviewer.sim import ALL_KINDS

    kinds: list[Key] = list(ALL_KINDS) + sorted(k for k in scores if k not in ALL_KINDS)
    print()
    head = f"{'rule':<14} {'kind':<19} {'labels':>6} {'found':>6} {'prec':>6} {'recall':>6}"
    print(head + f" {'ttd_h':>6} {'clean':>6} {'unseen':>6}")
    summary: dict[str, Any] = {}
    for rule, kind in kinds:
        name = f"{rule}/{kind}"
        if rule not in REGISTRY:
            print(f"{rule:<14} {kind:<19} rule missing")
            summary[name] = "rule missing"
            continue
        row = scores[(rule, kind)].row()
        summary[name] = row

        def cell(v: Any) -> str:
            return "-" if v is None else str(v)

        print(
            f"{rule:<14} {kind:<19} {row['labels']:>6} {row['findings']:>6} "
            f"{cell(row['precision']):>6} {cell(row['recall']):>6} "
            f"{cell(row['median_ttd_h']):>6} {row['clean_findings']:>6} {row['unseen']:>6}"
        )
    if args.details:
        for (rule, kind), s in sorted(scores.items()):
            for m in s.missed:
                print(f"missed  {rule}/{kind}: {m}")
            for f in s.false:
                print(f"false   {rule}/{kind}: {f['where']}: {f['subject']}: {f['summary']}")
        for c in clean_findings:
            print(f"clean   {c['rule']}/{c['kind']}: {c['where']}: {c['subject']}: {c['summary']}")
    print(
        json.dumps(
            {
                "sizes": sizes,
                "noise": noises,
                "seeds": args.seeds,
                "window": args.window,
                "step": args.step,
                "scores": summary,
                "clean_findings": len(clean_findings),
                "timings": timings,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
