"""Print how long ``reviewer`` commands take to start, and what they load.

Each command runs in a fresh interpreter against a fresh SQLite store, several
times; the best wall time is printed with the peak RSS and whether scipy,
numpy, fastapi or psycopg were imported. Bytecode is cached in a temporary
folder (as an installed package has it), and one warm-up run fills it.

    python bench/startup.py                     # this checkout
    python bench/startup.py --root /work/main   # another checkout, to compare
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [
    "--help",
    "review --help",
    "proposals list --json",
    "findings list --json",
    "runs list --json",
    "silence list --json",
    "config check",
    "rules list",
]
HEAVY = ("scipy", "numpy", "fastapi", "psycopg")

# Run ``python -m reviewer ARGS``; at exit, write the peak RSS and the loaded packages.
_WRAPPER = """
import atexit, json, resource, runpy, sys
out = sys.argv[1]
sys.argv = ["reviewer", *sys.argv[2:]]
def _report():
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mods = sorted({m.split(".")[0] for m in sys.modules})
    open(out, "w").write(json.dumps({"rss_kb": rss, "modules": mods}))
atexit.register(_report)
runpy.run_module("reviewer", run_name="__main__", alter_sys=True)
"""


def measure(root: Path, command: str, runs: int, work: Path, env: dict[str, str]) -> dict:
    out = work / "report.json"
    times = []
    report: dict = {}
    for _ in range(runs + 1):  # the first run warms the bytecode cache
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _WRAPPER, str(out), *command.split()],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"reviewer {command} failed:\n{proc.stderr}")
        report = json.loads(out.read_text())
    best = min(times[1:])
    return {
        "command": command,
        "best_s": round(best, 3),
        "median_s": round(statistics.median(times[1:]), 3),
        "rss_mb": round(report["rss_kb"] / 1024, 1),
        "heavy": [m for m in HEAVY if m in report["modules"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "config.toml").write_text(
            f'[reviewer]\nstore = "sqlite:///{work / "fresh.db"}"\n', encoding="utf-8"
        )
        env = {
            **os.environ,
            "PYTHONPATH": str(args.root.resolve()),
            "REVIEWER_CONFIG": str(work / "config.toml"),
            "PYTHONPYCACHEPREFIX": str(work / "pycache"),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        bare = float("inf")
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
            bare = min(bare, time.perf_counter() - start)
        print(f"root {args.root}; bare interpreter {bare:.3f} s; best of {args.runs} runs")
        if not args.json:
            print(f"{'command':<24} {'best s':>7} {'median s':>9} {'RSS MB':>7}  heavy imports")
        for command in COMMANDS:
            row = measure(args.root, command, args.runs, work, env)
            if args.json:
                print(json.dumps(row))
            else:
                print(
                    f"{row['command']:<24} {row['best_s']:>7.3f} {row['median_s']:>9.3f} "
                    f"{row['rss_mb']:>7.1f}  {', '.join(row['heavy']) or '-'}"
                )


if __name__ == "__main__":
    main()
