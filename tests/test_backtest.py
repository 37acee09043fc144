"""Backtest and time travel agree: what the backtest says fired at T, review --now T finds."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner

from reviewer.backtest import backtest
from reviewer.cli import cli
from reviewer.engine import Engine
from rules import REGISTRY
from store.sqlite import SQLiteStore
from store.timeutil import fmt_ts, parse_ts
from tests.support import make_config, task_rows

T0 = parse_ts("2026-03-01T00:00:00Z")


def _history() -> list[dict[str, object]]:
    """Tasks that go stale at different times, and one that is picked up later."""
    return [
        {"id": "crit", "title": "Hotfix login", "priority": "critical", "created_at": fmt_ts(T0)},
        {
            "id": "high",
            "title": "Wire metrics",
            "priority": "high",
            "created_at": fmt_ts(T0 + timedelta(days=1)),
        },
        {
            "id": "late",
            "title": "Picked up on day 6",
            "priority": "high",
            "status": "running",
            "created_at": fmt_ts(T0),
            "started_at": fmt_ts(T0 + timedelta(days=6)),
        },
        {"id": "low", "title": "Polish docs", "priority": "low", "created_at": fmt_ts(T0)},
    ]


def test_review_at_each_step_matches_the_backtest(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "p.db")
    store.upsert_tasks(task_rows(_history()))
    only_stale = {r: {"enabled": False} for r in REGISTRY if r != "stale-queue"}
    cfg = make_config({"rules": {**only_stale, "stale-queue": {"kinds": ["stale"]}}})
    engine = Engine(cfg, store)
    step = timedelta(hours=12)
    end = T0 + timedelta(days=9)
    events = backtest(engine, T0, end, step)
    by_subject = {e["subject"]: e for e in events}
    assert set(by_subject) == {"crit", "high", "late"}
    assert by_subject["crit"]["first_fired_at"] == fmt_ts(T0 + timedelta(days=1))
    assert by_subject["high"]["first_fired_at"] == fmt_ts(T0 + timedelta(days=4))
    assert by_subject["late"]["first_fired_at"] == fmt_ts(T0 + timedelta(days=3))
    assert by_subject["late"]["cleared_at"] == fmt_ts(T0 + timedelta(days=6))
    assert by_subject["crit"]["cleared_at"] is None
    # One episode each here: fired_at lists when each began.
    assert all(e["fired_at"] == [e["first_fired_at"]] for e in events)

    at = T0
    while at <= end:
        firing = {
            e["fingerprint"]
            for e in events
            if e["first_fired_at"] <= fmt_ts(at)
            and (e["cleared_at"] is None or fmt_ts(at) < e["cleared_at"])
        }
        reviewed = {f["fingerprint"] for f in engine.review(at, dry_run=True).findings}
        assert reviewed == firing, fmt_ts(at)
        at += step
    store.close()


def test_backtest_cli_prints_one_json_object_per_finding(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[reviewer]\nstore = "sqlite:///p.db"\n[rules.stale-queue]\nkinds = ["stale"]\n'
        + "".join(f"[rules.{r}]\nenabled = false\n" for r in REGISTRY if r != "stale-queue")
    )
    store = SQLiteStore(tmp_path / "p.db")
    store.upsert_tasks(task_rows(_history()))
    store.close()
    result = CliRunner().invoke(
        cli,
        [
            "--config",
            str(cfg),
            "backtest",
            "--from",
            fmt_ts(T0),
            "--to",
            fmt_ts(T0 + timedelta(days=9)),
            "--step",
            "12h",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert {x["subject"] for x in lines} == {"crit", "high", "late"}
    assert all(
        {"rule", "kind", "subject", "fingerprint", "first_fired_at"} <= set(x) for x in lines
    )
    # The backtest writes nothing: no runs, findings or proposals.
    store = SQLiteStore(tmp_path / "p.db")
    assert store.query("SELECT COUNT(*) AS n FROM reviewer_runs")[0]["n"] == 0
    store.close()
    bad = CliRunner().invoke(
        cli,
        [
            "--config",
            str(cfg),
            "backtest",
            "--from",
            fmt_ts(T0),
            "--to",
            fmt_ts(T0),
            "--step",
            "soon",
        ],
    )
    assert bad.exit_code == 2 and "is not a duration" in bad.stderr
