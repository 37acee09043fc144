"""``reviewer demo``: build a realistic pipeline with every kind of problem and review it once.

The history comes from ``reviewer.sim`` (fixed seed, four weeks, a few
hundred tasks), so the demo is the same on every machine. Beside the store it
writes a workspace with the repository, its specs and a ``config.toml`` that
enables every rule with manual approval, except one on ``auto`` so the demo
also shows a task being filed into the backlog.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import click

from reviewer.render import shell_words
from reviewer.sim import Labels, simulate, to_toml
from rules import REGISTRY
from store import ReviewerState, SQLiteStore, read_meta
from store.finite import dumps

SEED = 2026
DAYS = 28
TASKS_PER_DAY = 80


def build_demo(db_path: Path) -> tuple[Path, Labels]:
    """Replace ``db_path`` with the demo store; return the demo config's path and the labels."""
    db_path = db_path.resolve()
    refuse_to_replace(db_path)
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    workspace = db_path.parent / f"{db_path.stem}-workspace"
    if workspace.exists():
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    with SQLiteStore(db_path) as store:
        ReviewerState(store).set_meta("demo", str(SEED))
        labels = simulate(
            store,
            workspace=workspace,
            seed=SEED,
            days=DAYS,
            tasks_per_day=TASKS_PER_DAY,
            noise=0.5,
            problems=True,
        )
        from reviewer.demo_review import add_review_problems

        add_review_problems(
            store, repo_dir=labels.repo_dir, specs_dir=labels.specs_dir, end=labels.end
        )
    # The first registered rule that asks for it runs on auto.
    auto = next((r for r, m in REGISTRY.items() if getattr(m, "DEMO_AUTO", False)), None)
    data = labels.config(f"sqlite:///{db_path}", approval="manual", auto=[auto] if auto else [])
    # Above the demo's largest rule (backlog-hygiene, 7), so every kind keeps its own proposal.
    data["reviewer"]["burst_limit"] = 10
    data["reviewer"]["specs_dir"] = str(labels.specs_dir.relative_to(workspace))
    data["reviewer"]["repo_dir"] = str(labels.repo_dir.relative_to(workspace))
    config_path = workspace / "config.toml"
    header = (
        "# Written by `reviewer demo`: every rule enabled, approval manual"
        + (f" (auto for {auto})" if auto else "")
        + ".\n# Paths are relative to this file.\n"
    )
    config_path.write_text(to_toml(data, header))
    return config_path, labels


class NotADemoStore(Exception):
    """The demo was pointed at a file that is not an earlier demo store."""


def refuse_to_replace(db_path: Path) -> None:
    """Raise unless ``db_path`` is absent or a store an earlier ``reviewer demo`` built.

    The demo replaces its store; it must never replace someone's real pipeline.
    """
    if not db_path.exists():
        return
    if read_meta(db_path, "demo") is None:
        raise NotADemoStore(
            f"{db_path} exists and is not a demo store; the demo replaces its store, so "
            "give it a new path with --db (nothing was changed)"
        )


def run_demo(db_path: Path, *, as_json: bool) -> int:
    """Build the demo store, review it as of the end of its history, print what was found."""
    from reviewer.app import App
    from reviewer.config import load_config

    t0 = time.monotonic()
    config_path, labels = build_demo(db_path)
    build_s = time.monotonic() - t0
    config = load_config(config_path)
    t1 = time.monotonic()
    with App.from_config(config) as app:
        result = app.engine.review(labels.end, trigger="demo")
        review_s = time.monotonic() - t1
        shown = _proposals_to_show(app, result.proposals)
    if as_json:
        out: dict[str, Any] = {
            "db": str(db_path.resolve()),
            "config": str(config_path),
            "build_seconds": round(build_s, 2),
            "review_seconds": round(review_s, 2),
            "history": labels.public(),
            "review": result.public(),
        }
        click.echo(dumps(out, indent=2))
        return 1 if result.status == "failed" else 0

    c = labels.counts
    click.echo(
        f"Built a demo pipeline in {db_path} ({build_s:.1f} s): {c['tasks']} tasks, "
        f"{c['metrics']} task runs, {c['test_results']} test results, {c['specs']} specs "
        f"from {labels.start:%Y-%m-%d} to {labels.end:%Y-%m-%d %H:%M} UTC, with "
        f"{len(labels.labels) + len(labels.injections)} injected problems."
    )
    click.echo(f"Workspace and config: {config_path.parent}")
    click.echo("")
    from reviewer.report import print_review

    print_review(result)
    click.echo(f"review took {review_s:.2f} s")
    for proposal in shown:
        click.echo("")
        click.echo(f"--- proposal #{proposal['id']} ({proposal['state']}): {proposal['title']}")
        click.echo(proposal["body"].rstrip())
    click.echo("")
    click.echo("Next steps:")
    for line in next_steps(config_path):
        click.echo(f"  {line}")
    return 1 if result.status == "failed" else 0


def next_steps(config_path: Path) -> list[str]:
    """The commands to paste next; the path is quoted (it may hold spaces or quotes)."""
    cfg = shell_words("reviewer", "--config", config_path)
    return [
        f"{cfg} proposals list",
        f"{cfg} proposals show ID",
        f"{cfg} proposals approve ID",
        f"{cfg} findings list",
        f"{cfg} report     # per rule: decisions, outcomes of filed tasks, hints",
        f"{cfg} run        # the daemon, with the web page at http://127.0.0.1:8787/",
    ]


def _proposals_to_show(app: Any, proposals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One scheduled proposal (if any) and one pending one, with their bodies."""
    picked: list[dict[str, Any]] = []
    for state in ("scheduled", "pending"):
        match = next((p for p in proposals if p.get("state") == state), None)
        if match is not None:
            full = app.state.proposal(match["id"])
            picked.append({**full.public(), "body": full.body})
    return picked


__all__ = ["NotADemoStore", "build_demo", "run_demo"]
