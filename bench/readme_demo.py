"""Regenerate the README's demo block from a real run of ``reviewer demo``.

Runs ``python -m reviewer demo`` (this checkout's code) in a fresh temporary
folder and puts what it printed, unedited except that the temporary folder is
shortened to ``.``, between ``<!-- demo:start -->`` and ``<!-- demo:end -->``
of README.md. ``--end ISO`` passes the demo's ``--end`` (default: now, as a
user's run).

    python bench/readme_demo.py [--readme README.md] [--end ISO]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- demo:start -->", "<!-- demo:end -->"
INTRO = (
    "This is what `reviewer demo` printed on this machine (unedited, paths shortened;\n"
    "the history is seeded and ends at the current hour, so yours matches up to the\n"
    "dates, the timings and the day's spend, counted from 00:00 UTC;\n"
    "`bench/readme_demo.py` regenerates this block):\n"
)


def run_demo(end: str | None = None) -> str:
    """What ``reviewer demo`` prints, run in a fresh folder, with that folder shown as ``.``."""
    with tempfile.TemporaryDirectory(prefix="readme-demo-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("REVIEWER_CONFIG", None)
        argv = [sys.executable, "-m", "reviewer", "demo"] + (["--end", end] if end else [])
        done = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"reviewer demo exited {done.returncode}:\n{done.stderr}")
        real = os.path.realpath(tmp)
        return done.stdout.replace(real, ".").replace(tmp, ".")


def block(output: str) -> str:
    return f"{START}\n{INTRO}\n```text\n{output.rstrip()}\n```\n{END}"


def replace_block(readme: str, new: str) -> str:
    if readme.count(START) != 1 or readme.count(END) != 1:
        raise SystemExit(f"README needs exactly one {START} ... {END}")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + new + tail


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--end", help="the demo's --end (default: now)")
    args = ap.parse_args(argv)
    readme = args.readme.read_text(encoding="utf-8")
    updated = replace_block(readme, block(run_demo(args.end)))
    args.readme.write_text(updated, encoding="utf-8")
    print(f"wrote the demo block of {args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
