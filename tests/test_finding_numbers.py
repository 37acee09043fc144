"""Every finding says its numbers as numbers: no inf or NaN in evidence or text.

Replays simulated histories (with problems and clean, quiet and busy) through
the engine and checks every finding of every rule.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reviewer.app import App
from reviewer.backtest import backtest
from reviewer.config import config_from_dict
from reviewer.sim import simulate
from store.sqlite import SQLiteStore

# "inf", "nan", "-inf", "infinity" as a word: a number that could not be computed.
_BAD_NUMBER = re.compile(r"(?<![\w.])[-+]?(inf(inity)?|nan)(?![\w])", re.IGNORECASE)


def _bad_values(value: Any, path: str = "") -> list[str]:
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{path} = {value}"]
    if isinstance(value, str) and _BAD_NUMBER.search(value):
        return [f"{path} = {value!r}"]
    if isinstance(value, dict):
        return [bad for k, v in value.items() for bad in _bad_values(v, f"{path}.{k}")]
    if isinstance(value, list | tuple):
        return [bad for i, v in enumerate(value) for bad in _bad_values(v, f"{path}[{i}]")]
    return []


def _findings(tmp: Path, tasks_per_day: int, problems: bool) -> list[dict[str, Any]]:
    db = tmp / "store.db"
    with SQLiteStore(db) as store:
        labels = simulate(
            store, workspace=tmp, seed=3, days=10, tasks_per_day=tasks_per_day, noise=0.8,
            problems=problems,
        )  # fmt: skip
    config = config_from_dict(labels.config(f"sqlite:///{db}"), tmp / "config.toml")
    with App.from_config(config) as app:
        return backtest(
            app.engine, labels.end - timedelta(hours=24), labels.end, timedelta(hours=4)
        )


@pytest.mark.slow
@pytest.mark.parametrize(("tasks_per_day", "problems"), [(16, True), (80, True), (16, False)])
def test_no_finding_says_inf_or_nan(tmp_path: Path, tasks_per_day: int, problems: bool) -> None:
    events = _findings(tmp_path, tasks_per_day, problems)
    if problems:
        assert events, "a history with problems gives findings to check"
    bad = []
    for e in events:
        where = f"{e['rule']}/{e['kind']} {e['subject']}"
        bad += [f"{where}: {b}" for b in _bad_values(e.get("evidence", {}), "evidence")]
        for field in ("summary", "title", "why", "action"):
            bad += [f"{where}: {b}" for b in _bad_values(e.get(field) or "", field)]
    assert bad == []


def test_the_check_sees_inf_and_nan() -> None:
    found = _bad_values({"a": float("inf"), "b": [float("nan")]}, "evidence")
    assert found == ["evidence.a = inf", "evidence.b[0] = nan"]
    assert _bad_values("against a usual 0 tokens (inf×, robust score inf)")
    assert _bad_values("score NaN")
    assert not _bad_values("information about infra, a financial nano-service")
