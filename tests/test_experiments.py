"""A/B comparison: Wilson, Fisher, Mann–Whitney, Holm, minimum samples, sample ratio."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from reviewer.config import ConfigError
from reviewer.experiments import compare_arms, holm, wilson_interval
from store.timeutil import parse_ts
from tests.support import make_config, make_store

NOW = parse_ts("2026-03-10T00:00:00Z")


def _runs(arm: str, n: int, completed: int, base: float, *, col: str = "prompt_variant") -> list:
    return [
        {
            "task_id": f"{arm}-{i}",
            col: arm,
            "duration_seconds": base + (i * 7) % 23,
            "status": "completed" if i < completed else "failed",
            "created_at": f"2026-03-0{1 + i % 9}T{i % 24:02d}:{i % 60:02d}:00Z",
        }
        for i in range(n)
    ]


def _compare(metrics: list[dict[str, Any]], cfg: dict[str, Any] | None = None, **kw: Any) -> Any:
    store = make_store(metrics=metrics)
    try:
        return compare_arms(
            store.view(NOW), kw.pop("by", "prompt_variant"), config=make_config(cfg), **kw
        )
    finally:
        store.close()


def test_wilson_matches_closed_form() -> None:
    z = stats.norm.ppf(0.975)
    for k, n in [(8, 10), (0, 12), (71, 100), (30, 30)]:
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        low, high = wilson_interval(k, n)  # type: ignore[misc]
        assert low == pytest.approx(max(0.0, centre - half), abs=1e-9)
        assert high == pytest.approx(min(1.0, centre + half), abs=1e-9)
    # A published value: 8 of 10 → (0.490, 0.943).
    low, high = wilson_interval(8, 10)  # type: ignore[misc]
    assert (round(low, 3), round(high, 3)) == (0.49, 0.943)
    assert wilson_interval(0, 0) is None


def test_holm_by_hand() -> None:
    # sorted 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → raised to 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_two_arms_against_scipy() -> None:
    doc = _compare([*_runs("A", 100, 71, 50.0), *_runs("B", 100, 85, 40.0)])
    assert doc["control"] == "A" or doc["control"] == "B"
    doc = _compare([*_runs("A", 100, 71, 50.0), *_runs("B", 100, 85, 40.0)], control="A")
    a, b = doc["arms"]
    assert (a["arm"], a["is_control"], b["arm"]) == ("A", True, "B")
    assert b["success_ci95"] == pytest.approx(list(wilson_interval(85, 100)), abs=1e-4)
    _, p_fisher = stats.fisher_exact([[85, 15], [71, 29]])
    assert b["success_test"]["p_value"] == pytest.approx(p_fisher)
    assert b["success_test"]["p_holm"] == pytest.approx(p_fisher)  # one arm: Holm is identity
    da = [50.0 + (i * 7) % 23 for i in range(100)]
    db = [40.0 + (i * 7) % 23 for i in range(100)]
    mw = stats.mannwhitneyu(db, da, alternative="two-sided")
    assert b["duration_test"]["p_value"] == pytest.approx(mw.pvalue)
    assert b["duration_test"]["median_diff"] == pytest.approx(np.median(db) - np.median(da))
    assert "B succeeds more often than A (85% vs 71%" in b["verdict"]
    assert "after Holm" in b["verdict"] and "B is faster than A" in b["verdict"]


def test_holm_across_three_arms_and_configured_control() -> None:
    metrics = [*_runs("A", 60, 40, 50.0), *_runs("B", 60, 50, 50.0), *_runs("C", 80, 42, 50.0)]
    cfg = {"experiments": {"p2": {"by": "prompt_variant", "control": "A"}}}
    doc = _compare(metrics, cfg)
    assert doc["control"] == "A" and doc["experiment"] == "p2"
    arms = {x["arm"]: x for x in doc["arms"]}
    raw = [stats.fisher_exact([[50, 10], [40, 20]])[1], stats.fisher_exact([[42, 38], [40, 20]])[1]]
    want = holm(raw)
    assert arms["B"]["success_test"]["p_holm"] == pytest.approx(want[0])
    assert arms["C"]["success_test"]["p_holm"] == pytest.approx(want[1])


def test_default_control_is_the_arm_with_most_runs() -> None:
    doc = _compare([*_runs("A", 40, 30, 50.0), *_runs("B", 45, 30, 50.0)])
    assert doc["control"] == "B"


def test_not_enough_data() -> None:
    doc = _compare([*_runs("A", 100, 70, 50.0), *_runs("B", 12, 12, 40.0)], control="A")
    b = doc["arms"][1]
    assert b["enough_data"] is False and b["success_test"] is None
    assert b["verdict"].startswith("not enough data: 12 runs in B (need 30")
    doc = _compare(
        [*_runs("A", 100, 70, 50.0), *_runs("B", 12, 12, 40.0)],
        {"experiments": {"min_samples": 10}},
        control="A",
    )
    assert doc["arms"][1]["success_test"] is not None


def test_sample_ratio_mismatch() -> None:
    cfg = {"experiments": {"p2": {"by": "prompt_variant", "variants": {"A": 0.5, "B": 0.5}}}}
    ok = _compare([*_runs("A", 60, 40, 50.0), *_runs("B", 40, 30, 50.0)], cfg)["srm"]
    assert ok["checked"] and not ok["mismatch"]
    assert ok["p_value"] == pytest.approx(stats.chisquare([60, 40], [50, 50]).pvalue)
    bad = _compare([*_runs("A", 80, 40, 50.0), *_runs("B", 20, 10, 50.0)], cfg)["srm"]
    assert bad["mismatch"] and "sample ratio mismatch" in bad["note"]
    weighted = {"experiments": {"p2": {"variants": {"A": 0.8, "B": 0.2}}}}
    assert not _compare([*_runs("A", 80, 40, 50.0), *_runs("B", 20, 10, 50.0)], weighted)["srm"][
        "mismatch"
    ]
    assert _compare([*_runs("A", 80, 40, 50.0)])["srm"]["checked"] is False


def test_by_model_and_errors() -> None:
    doc = _compare([*_runs("m1", 40, 30, 50.0, col="model")], by="model")
    assert [a["arm"] for a in doc["arms"]] == ["m1"]
    with pytest.raises(ValueError, match="cannot compare"):
        _compare([], by="executor")
    with pytest.raises(ValueError, match="control arm 'Z'"):
        _compare(_runs("A", 40, 30, 50.0), control="Z")
    with pytest.raises(ConfigError, match=r"\[experiments.p2\] option 'variants'"):
        _compare([], {"experiments": {"p2": {"variants": {"A": -1}}}})
