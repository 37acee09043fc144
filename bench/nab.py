"""usage-spikes on public labelled series: the Numenta Anomaly Benchmark (NAB).

    python bench/nab.py PATH/TO/NAB [--categories realKnownCause,realTraffic,artificialWithAnomaly]
                        [--files N] [--step 1h] [--tasks 3] [--hourly-usd 5]

PATH/TO/NAB is a checkout of https://github.com/numenta/NAB (``git clone
https://github.com/numenta/NAB``); only its ``data/``, ``labels/`` and
``config/profiles.json`` are read, nothing of it is copied.

Each series becomes the spend of one model: every point is spread over
``--tasks`` task_metrics rows inside the point's period (random shares, seeded;
a point of zero has no tasks),
shifted so nothing is negative and scaled so the median hour costs
``--hourly-usd`` (tokens at $10 per million). The rows go into a fresh SQLite
store, and ``reviewer.backtest`` (what ``review --once --now`` reports at each
instant) replays usage-spikes with its documented defaults (spikes judged per
model only: every task has the same model, executor and task type) every
``--step``.
Each time a finding starts firing is one detection, at the last NAB point its
review could see.

Scoring follows NAB's definition (written here from its documentation, not its
code): the anomaly windows of ``labels/combined_windows.json``; a window's first
detection scores TP × the scaled sigmoid of its position relative to the
window's end, later ones in the window nothing; a detection outside any window
scores FP × the scaled sigmoid of its distance past the previous window's end
(−FP before the first window); a window without detection scores −FN;
detections in the probationary first 15% of a file (at most 750 points) do not
count. The standard profile's weights come from ``config/profiles.json``
(TP 1.0, FP 0.11, FN 1.0). A category's score is normalised between the null
detector (nothing detected: 0) and the perfect one (every window at its first
point: 100).

Beside it, in the same run, a plain baseline on the same hourly spend: a
two-sided trailing median/MAD detector (7 days, at least 1 day, |robust z| ≥ 3),
one detection at the first hour of each run of flagged hours.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reviewer.app import App
from reviewer.backtest import backtest
from reviewer.config import config_from_dict
from store.records import MetricRecord
from store.sqlite import SQLiteStore
from store.timeutil import fmt_ts, parse_duration, parse_ts

CATEGORIES = ("realKnownCause", "realTraffic", "artificialWithAnomaly")
RULE = "usage-spikes"
HOUR = timedelta(hours=1)
USD_PER_TOKEN = 10e-6
BASELINE_HOURS, BASELINE_MIN_HOURS, BASELINE_Z = 168, 24, 3.0


@dataclass
class Series:
    name: str  # category/file.csv, as NAB names it
    times: list[datetime]
    values: np.ndarray
    windows: list[tuple[datetime, datetime]]


@dataclass
class FileScore:
    raw: float = 0.0
    windows: int = 0
    caught: int = 0
    false: int = 0


@dataclass
class CategoryScore:
    files: list[FileScore] = field(default_factory=list)

    def total(self, weights: dict[str, float]) -> tuple[float, int, int, int]:
        raw = sum(f.raw for f in self.files)
        windows = sum(f.windows for f in self.files)
        null, perfect = -weights["fnWeight"] * windows, weights["tpWeight"] * windows
        score = 100.0 * (raw - null) / (perfect - null) if windows else 0.0
        return score, sum(f.caught for f in self.files), windows, sum(f.false for f in self.files)


def _nab_time(text: str) -> datetime:
    return parse_ts(text.strip().split(".")[0].replace(" ", "T") + "Z")


def load(root: Path, category: str) -> list[Series]:
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    out = []
    for path in sorted((root / "data" / category).glob("*.csv")):
        name = f"{category}/{path.name}"
        with path.open() as fh:
            rows = list(csv.DictReader(fh))
        out.append(
            Series(
                name,
                [_nab_time(r["timestamp"]) for r in rows],
                np.array([float(r["value"]) for r in rows]),
                [(_nab_time(a), _nab_time(b)) for a, b in windows.get(name, [])],
            )
        )
    return out


def hourly(s: Series, spend: np.ndarray) -> tuple[datetime, np.ndarray]:
    """Spend per clock hour, from the first point's hour on."""
    start = s.times[0].replace(minute=0, second=0)
    idx = np.array([int((t - start) // HOUR) for t in s.times])
    return start, np.bincount(idx, weights=spend)


def spend_of(s: Series, hourly_usd: float) -> np.ndarray:
    """Each point's spend: shifted to be non-negative, scaled to the median hour."""
    shifted = s.values - min(0.0, float(s.values.min()))
    _, hours = hourly(s, shifted)
    typical = float(np.median(hours))
    if typical <= 0:  # mostly idle series: scale to the typical busy hour instead
        typical = float(np.median(hours[hours > 0]))
    return shifted * (hourly_usd / typical)


def metric_rows(s: Series, spend: np.ndarray, tasks: int, seed: int) -> Iterable[dict[str, object]]:
    """``tasks`` rows per point inside its period, with random shares of its spend.

    A point of no spend has no tasks: a pipeline that does nothing records nothing.
    """
    rng = np.random.default_rng(seed)
    gaps = [b - a for a, b in zip(s.times, s.times[1:], strict=False)]
    typical_gap = sorted(gaps)[len(gaps) // 2]
    for i, (at, usd) in enumerate(zip(s.times, spend, strict=True)):
        period = max(min(gaps[i] if i < len(gaps) else typical_gap, typical_gap), timedelta(0))
        shares = rng.dirichlet(np.ones(tasks))
        offsets = np.sort(rng.uniform(0, period.total_seconds(), tasks))
        if usd <= 0:
            continue
        for k in range(tasks):
            cost = float(usd * shares[k])
            tokens = round(cost / USD_PER_TOKEN)
            yield MetricRecord.model_validate(
                {
                    "task_id": f"p{i}-{k}",
                    "task_type": "impl",
                    "model": "nab",
                    "executor": "e1",
                    "status": "completed",
                    "duration_seconds": 60.0,
                    "created_at": fmt_ts(at + timedelta(seconds=float(offsets[k]))),
                    "tokens_in": int(tokens * 0.85),
                    "tokens_out": tokens - int(tokens * 0.85),
                    "cost_usd": round(cost, 6),
                }
            ).row()


def reviewer_detections(
    s: Series,
    spend: np.ndarray,
    tasks: int,
    step: timedelta,
    workdir: Path,
    options: dict[str, Any] | None = None,
) -> list[datetime]:
    """The instants at which a usage-spikes finding started (or restarted) firing."""
    db = workdir / "nab.db"
    with SQLiteStore(db) as store:
        store.upsert_metrics(list(metric_rows(s, spend, tasks, seed=len(s.times))))
    config = config_from_dict(
        {
            "reviewer": {"store": f"sqlite:///{db}", "specs_dir": ".", "repo_dir": "."},
            "rules": {
                **{rid: {"enabled": False} for rid in _rule_ids() if rid != RULE},
                # Every task here has the same model, executor and task type: one
                # dimension gives the same findings (the others would be named as
                # explained by it) in a third of the time.
                RULE: {"spike_dimensions": ["model"], **(options or {})},
            },
        },
        workdir / "config.toml",
    )
    # Reviews at :05, as a daemon's every-15-minutes cycle would first see each hour.
    first = s.times[0].replace(minute=5, second=0) + HOUR
    with App.from_config(config) as app:
        events = backtest(app.engine, first, s.times[-1], step)
    return sorted(parse_ts(at) for e in events for at in e["fired_at"])


def _rule_ids() -> list[str]:
    from rules import REGISTRY

    return list(REGISTRY)


def baseline_detections(s: Series, spend: np.ndarray) -> list[datetime]:
    """Trailing median/MAD on the hourly spend; one detection per run of flagged hours."""
    start, hours = hourly(s, spend)
    found, was = [], False
    for h in range(len(hours) - 1):  # the last hour may be incomplete
        past = hours[max(0, h - BASELINE_HOURS) : h]
        flag = False
        if past.size >= BASELINE_MIN_HOURS:
            med = float(np.median(past))
            mad = 1.4826 * float(np.median(np.abs(past - med)))
            scale = max(mad, 0.1 * abs(med), 1e-9)
            flag = abs(hours[h] - med) / scale >= BASELINE_Z
        if flag and not was:
            found.append(start + (h + 1) * HOUR)  # known once the hour is complete
        was = flag
    return found


def _scaled_sigmoid(position: float) -> float:
    return -1.0 if position > 3.0 else 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def score_file(s: Series, detections: list[datetime], weights: dict[str, float]) -> FileScore:
    """NAB's event score of one file for detections at the given instants."""
    n = len(s.times)
    probation = min(math.floor(0.15 * n), 0.15 * 5000)
    times = np.array([t.timestamp() for t in s.times])
    # Each detection lands on the last point its review could see.
    at = np.searchsorted(times, [d.timestamp() for d in detections], side="right") - 1
    rows = sorted({int(r) for r in at})
    rows = [r for r in rows if r >= probation]
    bounds = []
    for opens, closes in s.windows:
        left = int(np.searchsorted(times, opens.timestamp()))
        right = int(np.searchsorted(times, closes.timestamp(), side="right")) - 1
        bounds.append((left, right))
    result = FileScore(windows=len(bounds))
    best: dict[int, float] = {}
    for r in rows:
        inside = next((k for k, (a, b) in enumerate(bounds) if a <= r <= b), None)
        if inside is not None:
            a, b = bounds[inside]
            width = b - a + 1
            tp = _scaled_sigmoid(-(b - r + 1) / width) / _scaled_sigmoid(-1.0)
            best[inside] = max(best.get(inside, -math.inf), tp * weights["tpWeight"])
            continue
        result.false += 1
        before = [(a, b) for a, b in bounds if b < r]
        if not before:
            result.raw -= weights["fpWeight"]
        else:
            a, b = before[-1]
            result.raw += weights["fpWeight"] * _scaled_sigmoid((r - b) / (b - a))
    result.caught = len(best)
    result.raw += sum(best.values()) - weights["fnWeight"] * (len(bounds) - len(best))
    return result


def _step(s: Series) -> timedelta:
    """1h, or coarser on long series so a replay takes at most ~1500 reviews.

    NAB's windows are 10% of a file's length between them, days wide on the long
    series, so a 3-hour step moves a detection by a small part of a window.
    """
    hours = (s.times[-1] - s.times[0]) / HOUR
    return HOUR * max(1, min(3, math.ceil(hours / 1500)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("nab", type=Path, help="a checkout of github.com/numenta/NAB")
    parser.add_argument("--categories", default=",".join(CATEGORIES))
    parser.add_argument("--files", type=int, default=0, help="at most this many per category")
    parser.add_argument(
        "--step",
        default="auto",
        help="replay step; auto: 1h, or up to 3h on long series (the daemon reviews every 15m)",
    )
    parser.add_argument("--tasks", type=int, default=3, help="task rows per NAB point")
    parser.add_argument("--hourly-usd", type=float, default=5.0, help="spend of a median hour")
    parser.add_argument("--verbose", action="store_true", help="one line per file")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a usage-spikes option (a TOML value), e.g. spike_shift_limit=8.0; repeatable",
    )
    args = parser.parse_args(argv)
    rule_options = {
        key.strip(): tomllib.loads(f"v = {value}")["v"]
        for key, value in (o.split("=", 1) for o in args.option)
    }
    if not (args.nab / "labels" / "combined_windows.json").is_file():
        print(
            f"no NAB checkout at {args.nab}: get it with "
            "`git clone https://github.com/numenta/NAB` and pass its path",
            file=sys.stderr,
        )
        return 2
    weights = json.loads((args.nab / "config" / "profiles.json").read_text())["standard"][
        "CostMatrix"
    ]
    t0 = time.monotonic()
    table: dict[str, dict[str, CategoryScore]] = {}
    for category in args.categories.split(","):
        series = load(args.nab, category)
        if args.files:
            series = series[: args.files]
        scores = {"reviewer": CategoryScore(), "baseline": CategoryScore()}
        table[category] = scores
        for s in series:
            spend = spend_of(s, args.hourly_usd)
            step = _step(s) if args.step == "auto" else parse_duration(args.step)
            with tempfile.TemporaryDirectory() as tmp:
                mine = reviewer_detections(s, spend, args.tasks, step, Path(tmp), rule_options)
            ours = score_file(s, mine, weights)
            theirs = score_file(s, baseline_detections(s, spend), weights)
            scores["reviewer"].files.append(ours)
            scores["baseline"].files.append(theirs)
            if args.verbose:
                print(
                    f"  {s.name}: reviewer {ours.caught}/{ours.windows} caught, "
                    f"{ours.false} false; baseline {theirs.caught}/{theirs.windows}, "
                    f"{theirs.false} false",
                    flush=True,
                )
    print(
        f"NAB standard profile (TP {weights['tpWeight']}, FP -{weights['fpWeight']}, "
        f"FN -{weights['fnWeight']}), step {args.step}, {args.tasks} tasks a point, "
        f"median hour ${args.hourly_usd:g}"
    )
    print(f"{'category':24} {'detector':9} {'score':>6} {'caught':>8} {'false alarms':>13}")
    for category, scores in table.items():
        for who, sc in scores.items():
            value, caught, windows, false = sc.total(weights)
            print(f"{category:24} {who:9} {value:6.1f} {caught:>3}/{windows:<4} {false:>13}")
    print(f"{time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
