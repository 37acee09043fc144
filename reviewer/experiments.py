"""A/B comparison of pipeline runs by prompt variant, skill version or model (Phase 2).

Each *arm* is one value of the compared tag (``prompt_variant``,
``skill_version`` or ``model``) on the TaskMetric rows; rows without the tag
are left out. One arm is the *control*: the one named by the caller, else the
configured experiment's ``control``, else the arm with the most runs.

For every other arm:

- success rate with a Wilson 95% interval, and Fisher's exact test (two-sided)
  of its completed/failed counts against the control's;
- durations compared with the Mann–Whitney U test (two-sided) and the
  difference of medians (arm − control);
- p-values Holm-corrected across the arms, separately for success and for
  duration (each is one family of tests);
- no verdict below ``min_samples`` runs in the arm or in the control (it says
  "not enough data" instead).

Counts come from one grouped SQL query. Durations are read per arm as one
numeric column, capped at ``max_durations_per_arm`` (default 100,000): the
most recent runs, ordered by ``created_at`` then ``task_id``, so the sample is
deterministic.

When an experiment is configured for the compared tag the arms were meant to
split in known ratios (its ``variants`` weights, else equally), and a
sample-ratio-mismatch check (chi-square goodness of fit) flags a split that
is off with p below ``srm_p`` (default 0.001): the assignment or the logging is
broken and the comparison should not be trusted.

Config (defaults shown)::

    [experiments]
    min_samples = 30
    alpha = 0.05
    max_durations_per_arm = 100000
    srm_p = 0.001

    [experiments.prompt-v2]          # one experiment
    by = "prompt_variant"             # prompt_variant | skill_version | model
    control = "A"                     # default: the arm with the most runs
    variants = { A = 0.5, B = 0.5 }   # intended split (reviewer.assignment.assign)
    salt = "prompt-v2"                # default: the experiment's name
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reviewer.config import Config, ConfigError
from reviewer.experiment_settings import (
    ExperimentDef,
    ExperimentSettings,
    parse_experiments,
)
from store import ARM_COLUMNS, BacklogView, MetricFilter


def experiment_settings(config: Config) -> ExperimentSettings:
    """The validated ``[experiments]`` table; a bad one raises ``ConfigError`` naming it."""
    where = str(config.path) if config.path else "built-in defaults"
    try:
        return parse_experiments(config.experiments, where)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


# -- statistics -------------------------------------------------------------------------
def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (scipy's ``method="wilson"``)."""
    if n <= 0:
        return None
    from scipy import stats  # not at the top: config loading imports this module

    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order.

    Step-down: sort ascending; the i-th smallest (0-based) of m is multiplied
    by m − i, capped at 1, and never below the adjusted value before it.
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def _fmt_p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def _pct(rate: float) -> str:
    return f"{rate * 100:.0f}%"


def _secs(value: float) -> str:
    return f"{value:.0f}s" if value >= 10 else f"{value:.1f}s"


# -- the comparison ---------------------------------------------------------------------
def compare_arms(
    view: BacklogView,
    by: str,
    *,
    config: Config,
    filters: MetricFilter | None = None,
    control: str | None = None,
    experiment: str | None = None,
) -> dict[str, Any]:
    """Compare every arm of ``by`` with the control, as of ``view.now``; a JSON-able dict."""
    # numpy and scipy load here, not at the top: config loading imports this module.
    import numpy as np
    from scipy import stats

    if by not in ARM_COLUMNS:
        raise ValueError(f"cannot compare by {by!r}; expected one of {', '.join(ARM_COLUMNS)}")
    settings = experiment_settings(config)
    exp_name, exp = _experiment_for(settings, by, experiment)
    f = filters or MetricFilter()
    rows = view.arm_counts(by, f)
    arms: dict[str, dict[str, Any]] = {}
    for r in rows:
        runs, completed = int(r["runs"]), int(r["completed"] or 0)
        arms[str(r["arm"])] = {
            "arm": str(r["arm"]),
            "runs": runs,
            "completed": completed,
            "failed": runs - completed,
            "success_rate": round(completed / runs, 4) if runs else None,
            "success_ci95": _round_pair(wilson_interval(completed, runs)),
            "avg_duration": _round(r["avg_duration"]),
            "timed": int(r["timed"] or 0),
        }
    control = control or (exp.control if exp else None)
    if control is None and arms:
        # The most runs; a tie goes to the first name, so the choice is stable.
        control = min(arms.values(), key=lambda a: (-a["runs"], a["arm"]))["arm"]
    if control is not None and arms and control not in arms:
        raise ValueError(
            f"control arm {control!r} has no runs by {by}; arms: {', '.join(sorted(arms))}"
        )

    durations: dict[str, np.ndarray] = {}
    for name in arms:
        durations[name] = np.asarray(
            view.arm_durations(by, name, f, settings.max_durations_per_arm), dtype=float
        )
        arms[name]["median_duration"] = (
            _round(float(np.median(durations[name]))) if durations[name].size else None
        )
        arms[name]["durations_used"] = int(durations[name].size)

    n_min = settings.min_samples
    tested: list[str] = []
    for name, arm in arms.items():
        arm["is_control"] = name == control
        arm["enough_data"] = arm["runs"] >= n_min
        arm["success_test"] = None
        arm["duration_test"] = None
    for name, arm in arms.items():
        if name == control or control is None:
            continue
        ctrl = arms[control]
        if not arm["enough_data"] or not ctrl["enough_data"]:
            continue
        tested.append(name)
        table = [[arm["completed"], arm["failed"]], [ctrl["completed"], ctrl["failed"]]]
        _, p_success = stats.fisher_exact(table, alternative="two-sided")
        arm["success_test"] = {
            "test": "fisher_exact",
            "p_value": float(p_success),
            "diff": round(arm["success_rate"] - ctrl["success_rate"], 4),
        }
        a, c = durations[name], durations[control]
        if a.size and c.size:
            res = stats.mannwhitneyu(a, c, alternative="two-sided")
            arm["duration_test"] = {
                "test": "mannwhitneyu",
                "u": float(res.statistic),
                "p_value": float(res.pvalue),
                "median_diff": _round(float(np.median(a) - np.median(c))),
            }
    for key in ("success_test", "duration_test"):
        names = [n for n in tested if arms[n][key] is not None]
        for n, adj in zip(names, holm([arms[n][key]["p_value"] for n in names]), strict=True):
            arms[n][key]["p_holm"] = adj
            arms[n][key]["significant"] = adj < settings.alpha
    for arm in arms.values():
        arm["verdict"] = _verdict(arm, arms.get(control or ""), n_min, settings.alpha)

    return {
        "by": by,
        "experiment": exp_name,
        "control": control,
        "min_samples": n_min,
        "alpha": settings.alpha,
        "max_durations_per_arm": settings.max_durations_per_arm,
        "filters": f.public(),
        "arms": sorted(arms.values(), key=lambda a: (not a["is_control"], a["arm"])),
        "srm": _srm(arms, exp, settings.srm_p),
    }


def _experiment_for(
    settings: ExperimentSettings, by: str, name: str | None
) -> tuple[str | None, ExperimentDef | None]:
    if name is not None:
        if name not in settings.experiments:
            known = ", ".join(sorted(settings.experiments)) or "none configured"
            raise ValueError(f"unknown experiment {name!r}; known: {known}")
        return name, settings.experiments[name]
    for key, exp in sorted(settings.experiments.items()):
        if exp.by == by:
            return key, exp
    return None, None


def _verdict(arm: dict[str, Any], ctrl: dict[str, Any] | None, n_min: int, alpha: float) -> str:
    name = arm["arm"]
    if arm["is_control"]:
        return "control arm"
    if ctrl is None:
        return "no control arm"
    if not arm["enough_data"]:
        return f"not enough data: {arm['runs']} runs in {name} (need {n_min} per arm)"
    if not ctrl["enough_data"]:
        return f"not enough data: {ctrl['runs']} runs in control {ctrl['arm']} (need {n_min})"
    c = ctrl["arm"]
    st = arm["success_test"]
    rates = f"{_pct(arm['success_rate'])} vs {_pct(ctrl['success_rate'])}"
    p = f"{_fmt_p(st['p_holm'])} after Holm"
    if st["significant"]:
        more = "more" if arm["success_rate"] > ctrl["success_rate"] else "less"
        parts = [f"{name} succeeds {more} often than {c} ({rates}, {p})"]
    else:
        parts = [f"no clear difference in success between {name} and {c} ({rates}, {p})"]
    dt = arm["duration_test"]
    if dt is not None:
        medians = f"median {_secs(arm['median_duration'])} vs {_secs(ctrl['median_duration'])}"
        p = f"{_fmt_p(dt['p_holm'])} after Holm"
        if dt["significant"]:
            pace = "faster" if arm["median_duration"] < ctrl["median_duration"] else "slower"
            if arm["median_duration"] == ctrl["median_duration"]:
                pace = "differently distributed in duration"
            parts.append(f"{name} is {pace} than {c} ({medians}, {p})")
        else:
            parts.append(f"no clear difference in duration ({medians}, {p})")
    return "; ".join(parts)


def _srm(arms: dict[str, dict[str, Any]], exp: ExperimentDef | None, threshold: float) -> Any:
    if exp is None:
        return {
            "checked": False,
            "note": "no experiment configured for this tag, no intended split",
        }
    weights = exp.variants or dict.fromkeys(arms, 1.0)
    names = sorted(weights)
    observed = [arms[n]["runs"] if n in arms else 0 for n in names]
    total = sum(observed)
    if len(names) < 2 or total == 0:
        return {"checked": False, "note": "needs runs in at least two intended arms"}
    wsum = sum(weights[n] for n in names)
    expected = [total * weights[n] / wsum for n in names]
    from scipy import stats

    res = stats.chisquare(observed, expected)
    p = float(res.pvalue)
    mismatch = p < threshold
    return {
        "checked": True,
        "expected_share": {n: round(weights[n] / wsum, 4) for n in names},
        "observed": dict(zip(names, observed, strict=True)),
        "chi2": float(res.statistic),
        "p_value": p,
        "threshold": threshold,
        "mismatch": mismatch,
        "note": (
            f"sample ratio mismatch ({_fmt_p(p)}): the split differs from the intended one; "
            "check assignment and logging before trusting the comparison"
            if mismatch
            else "split matches the intended ratios"
        ),
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _round_pair(pair: tuple[float, float] | None) -> list[float] | None:
    return None if pair is None else [round(pair[0], 4), round(pair[1], 4)]
