"""stuck-phases, the failure kinds: ``timeout-pattern``, ``repeated-failure``, ``error-rate``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from rules.contract import ControlKind, ControlSpec, Finding, Severity
from store import BacklogView
from store.timeutil import fmt_duration


class Settings(Protocol):
    """The stuck-phases options the failure checks read (the rule's ``Settings`` has them)."""

    @property
    def timeout_window(self) -> timedelta: ...

    @property
    def timeout_baseline(self) -> timedelta: ...

    @property
    def timeout_patterns(self) -> Sequence[str]: ...

    @property
    def min_timeouts(self) -> int: ...

    @property
    def min_timeout_share(self) -> float: ...

    @property
    def min_baseline_runs(self) -> int: ...

    @property
    def alpha(self) -> float: ...

    @property
    def max_failures(self) -> int: ...

    @property
    def error_window(self) -> timedelta: ...

    @property
    def max_error_rate(self) -> float: ...

    @property
    def min_runs(self) -> int: ...

    @property
    def critical_error_rate(self) -> float: ...

    @property
    def error_scopes(self) -> Sequence[str]: ...


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "n/a"


def _greater_p(hits: int, misses: int, base_hits: int, base_misses: int) -> float:
    """One-sided Fisher exact p that the first row's share of hits beats the second's."""
    if base_hits + base_misses == 0:
        return 1.0
    from scipy.stats import fisher_exact  # here, not at the top: see rules/__init__.py

    table = [[hits, misses], [base_hits, base_misses]]
    return float(fisher_exact(table, alternative="greater").pvalue)


def timeout_patterns(options: Settings, view: BacklogView) -> Iterator[Finding]:
    """Task types whose executions fail by timeout more often than they used to."""
    window, baseline = fmt_duration(options.timeout_window), fmt_duration(options.timeout_baseline)
    rows = view.timeout_failures(
        options.timeout_window, options.timeout_baseline, options.timeout_patterns
    )
    for row in rows:
        rr, rf, rt = (
            int(row[k] or 0) for k in ("recent_runs", "recent_failures", "recent_timeouts")
        )
        br, bf, bt = (int(row[k] or 0) for k in ("base_runs", "base_failures", "base_timeouts"))
        # Too few timeouts, too little history, or timeouts a minor part of what fails.
        if rt < options.min_timeouts or br < options.min_baseline_runs:
            continue
        if rt / rf < options.min_timeout_share:
            continue
        # Two views of "more timeouts": of the failures, and of all runs; Bonferroni for both.
        p_failures = _greater_p(rt, rf - rt, bt, bf - bt)
        p_runs = _greater_p(rt, rr - rt, bt, br - bt)
        p_value = min(1.0, 2 * min(p_failures, p_runs))
        if p_value >= options.alpha:
            continue
        task_type = row["task_type"]
        yield Finding(
            kind="timeout-pattern",
            subject=f"task_type:{task_type}",
            summary=(
                f"{rt} of {rf} failed {task_type} runs in the last {window} timed out "
                f"({_pct(rt, rf)}; {_pct(rt, rr)} of all {rr} runs), against {bt} of {bf} "
                f"failures ({_pct(bt, bf)}; {_pct(bt, br)} of {br} runs) in the {baseline} "
                f"before (one-sided Fisher exact p = {p_value:.2g})"
            ),
            evidence={
                "task_type": task_type,
                "recent_runs": rr,
                "recent_failures": rf,
                "recent_timeouts": rt,
                "baseline_runs": br,
                "baseline_failures": bf,
                "baseline_timeouts": bt,
                "recent_share_of_failures": round(rt / rf, 3),
                "baseline_share_of_failures": round(bt / bf, 3) if bf else None,
                "p_value": float(f"{p_value:.3g}"),
                "sample_error": row["sample_error"],
            },
            title=f"Investigate rising timeouts in {task_type} tasks",
            why=(
                "A growing share of runs ending in timeouts means something they wait on got "
                "slower or stopped answering (a model endpoint, a tool, a test suite), or the "
                "work outgrew its time limit; each timeout burns a full run's time and cost."
            ),
            action=(
                f"Read the recent timed-out {task_type} runs (e.g. {row['sample_error']!r}): find "
                "what they wait on and whether it slowed down. Fix or route around the slow "
                "dependency; raise the timeout only if the work really grew."
            ),
        )


def repeated_failures(options: Settings, view: BacklogView) -> Iterator[Finding]:
    """Tasks that failed ``max_failures`` times: dead letters to escalate, not retry."""
    n = options.max_failures
    found: dict[str, dict[str, Any]] = {}
    for row in view.failed_task_attempts(n):
        found[row["id"]] = {**row, "failures": int(row["attempts"]), "state": "failed"}
    for row in view.repeated_metric_failures(n):
        seen = found.get(row["id"])
        if seen is None:
            found[row["id"]] = dict(row)
        else:
            seen["failures"] = max(seen["failures"], int(row["failures"]))
            seen["error"] = seen["error"] or row["error"]
    for task_id, task in sorted(found.items()):
        failures = int(task["failures"])
        title = task["title"] or task_id
        state = task["state"] or "unknown (no task record)"
        error = task["error"]
        last = f"; last error: {error[:200]}" if error else ""
        yield Finding(
            kind="repeated-failure",
            subject=task_id,
            summary=(
                f"Task {task_id} ({task['task_type'] or 'untyped'}) has failed {failures} times "
                f"(limit {n}), last at {task['failed_at']}, and is {state}{last}"
            ),
            evidence={
                "title": task["title"],
                "task_type": task["task_type"],
                "phase": task["phase"],
                "executor": task["executor"],
                "model": task["model"],
                "state": task["state"],
                "failures": failures,
                "failed_at": task["failed_at"],
                "error": error,
            },
            title=f"Escalate task {task_id} after {failures} failures: {title}",
            why=(
                f"After {failures} failed attempts another retry is unlikely to succeed and "
                "spends another run's time and cost; the task needs a human decision "
                "(the seed's dead-letter rule)."
            ),
            action=(
                f"Read the errors of {task_id}'s attempts and decide: fix the cause (description, "
                "spec, environment) and re-queue it once, split it, or cancel it. Stop automatic "
                "retries until then."
            ),
            remedy="escalate",
            related=[task_id],
        )


@dataclass
class _Tally:
    """Runs and failures of one executor or model, summed over its (executor, model) cells."""

    runs: int = 0
    failures: int = 0
    first_at: str | None = None
    last_at: str | None = None
    sample_error: str | None = None

    def add(self, cell: dict[str, Any]) -> None:
        self.runs += int(cell["runs"])
        self.failures += int(cell["failures"] or 0)
        self.first_at = min(filter(None, (self.first_at, cell["first_at"])), default=None)
        self.last_at = max(filter(None, (self.last_at, cell["last_at"])), default=None)
        self.sample_error = self.sample_error or cell["sample_error"]

    @property
    def rate(self) -> float:
        return self.failures / self.runs if self.runs else 0.0


SCOPES = ("executor", "model", "task_type")


def _tally(cells: list[dict[str, Any]], keep: Any) -> _Tally:
    tally = _Tally()
    for cell in cells:
        if keep(cell):
            tally.add(cell)
    return tally


Scope = tuple[str, str]


@dataclass
class _Verdict:
    """What the data says about one scope past the breaker."""

    scope: Scope
    tally: _Tally
    elsewhere: _Tally
    p_value: float | None
    # The scope of another dimension carrying most of its failures, and how each fares
    # without the other's runs.
    checked: list[tuple[Scope, _Tally, _Tally, bool, bool]]
    confounded_with: Scope | None = None
    explains: list[Scope] | None = None
    own_rate: float = 0.0


def _greater_or_none(tally: _Tally, base: _Tally) -> float | None:
    if not tally.runs or not base.runs:
        return None
    return _greater_p(
        tally.failures, tally.runs - tally.failures, base.failures, base.runs - base.failures
    )


def _breakers(options: Settings, view: BacklogView) -> list[_Verdict]:
    """Executors, models and task types past the breaker that the data names as a cause.

    The cause is the scope that stays anomalous once the other candidate's runs
    are left out: for each scope past the breaker, the scope of every other
    dimension that carries most of its failures is left out, and the rest is
    compared with the runs of neither (one-sided Fisher exact p below
    ``alpha``). A scope that is normal without the other, while the other
    still fails without it, is explained by the other and not reported. When
    neither stays anomalous without the other (all runs of a failing type ran
    on one executor), the data cannot tell them apart: one finding names both.
    """
    cells = view.failure_cells(options.error_window)
    scopes = [s for s in SCOPES if s in options.error_scopes]
    names = {(scope, c[scope]) for c in cells for scope in scopes if c[scope]}

    def passes(t: _Tally) -> bool:
        return t.runs >= options.min_runs and t.rate > options.max_error_rate

    def anomalous(t: _Tally, base: _Tally) -> bool:
        p = _greater_or_none(t, base)
        return p is not None and p < options.alpha

    raw = {key: _tally(cells, lambda c, k=key: c[k[0]] == k[1]) for key in sorted(names)}
    ranked = sorted(
        (kv for kv in raw.items() if passes(kv[1])),
        key=lambda kv: (-kv[1].rate, -kv[1].failures, kv[0]),
    )
    candidates = {key for key, _ in ranked}
    verdicts: dict[Scope, _Verdict] = {}
    explained: dict[Scope, Scope] = {}
    handled: set[Scope] = set()
    taken: dict[str, set[str]] = {scope: set() for scope in SCOPES}
    for key, tally in ranked:
        if key in handled:
            continue
        scope, name = key
        elsewhere = _tally(cells, lambda c, s=scope, n=name: c[s] != n)
        verdict = _Verdict(key, tally, elsewhere, _greater_or_none(tally, elsewhere), [])
        explained_by: Scope | None = None
        confounded: Scope | None = None
        for other in scopes:
            if other == scope:
                continue
            mine = [c for c in cells if c[scope] == name and c[other]]
            by_other: dict[str, tuple[int, int]] = {}
            for c in mine:
                f, r = by_other.get(c[other], (0, 0))
                by_other[c[other]] = (f + int(c["failures"] or 0), r + int(c["runs"]))
            if not by_other:
                continue
            top = max(sorted(by_other), key=lambda n: by_other[n])
            if by_other[top][0] == 0:
                continue
            d: Scope = (other, top)
            c_d = _tally(cells, lambda c, s=scope, n=name, o=other, t=top: c[s] == n and c[o] != t)
            d_c = _tally(cells, lambda c, s=scope, n=name, o=other, t=top: c[o] == t and c[s] != n)
            base = _tally(cells, lambda c, s=scope, n=name, o=other, t=top: c[s] != n and c[o] != t)
            if base.runs < options.min_runs or base.rate > options.max_error_rate:
                continue  # nothing normal left to compare with: the pair cannot be judged
            ca, da = anomalous(c_d, base), anomalous(d_c, base)
            verdict.checked.append((d, c_d, d_c, ca, da))
            if ca:
                continue
            if da and d in candidates:
                explained_by = explained_by or d
            else:
                confounded = confounded or d
        if explained_by is not None:
            explained[key] = explained_by
            continue
        own = _tally(
            cells,
            lambda c, s=scope, n=name: (
                c[s] == n and not any(c[o] in taken[o] for o in SCOPES if o != s)
            ),
        )
        if not passes(own):
            continue  # what is left of it once the causes already named are left out is fine
        if confounded is not None:
            verdict.confounded_with = confounded
            handled.add(confounded)
        taken[scope].add(name)
        verdict.own_rate = own.rate
        verdicts[key] = verdict
    for key, by in explained.items():
        if by in verdicts:
            verdicts[by].explains = [*(verdicts[by].explains or []), key]
    return [verdicts[key] for key, _ in ranked if key in verdicts]


def _label(key: Scope) -> str:
    scope, name = key
    return f"{scope.replace('_', ' ')} {name}"


def _unusual(v: _Verdict) -> str:
    """How unusual the scope's failures are against every other run in the window."""
    if v.p_value is None:
        return "no other runs in the window to compare with"
    e = v.elsewhere
    return (
        f"against {e.failures} of {e.runs} runs elsewhere "
        f"(one-sided Fisher exact p = {v.p_value:.2g})"
    )


def _attribution(v: _Verdict) -> str:
    parts = []
    if v.confounded_with is not None:
        d, c_d, d_c = next(
            (d, c_d, d_c) for d, c_d, d_c, _, _ in v.checked if d == v.confounded_with
        )
        parts.append(
            f"the data cannot tell it from {_label(d)}: without {_label(d)} it failed "
            f"{c_d.failures} of {c_d.runs} runs, and {_label(d)} without it failed "
            f"{d_c.failures} of {d_c.runs}; neither stays anomalous without the other, so "
            "either (or the two together) may be the cause"
        )
    else:
        for d, c_d, _, ca, _ in v.checked:
            if ca:
                parts.append(f"without {_label(d)} it still fails {c_d.failures} of {c_d.runs}")
    if v.explains:
        names = ", ".join(_label(k) for k in v.explains)
        parts.append(f"it explains the failures of {names}, normal without it")
    return "; ".join(parts)


def error_rates(options: Settings, view: BacklogView) -> Iterator[Finding]:
    """Executors, models and task types failing at circuit-breaker rates."""
    window = fmt_duration(options.error_window)
    for v in _breakers(options, view):
        (scope, name), tally = v.scope, v.tally
        runs, failures, rate = tally.runs, tally.failures, tally.rate
        critical = rate >= options.critical_error_rate
        error = tally.sample_error
        example = f"; e.g. {error[:200]}" if error else ""
        why_more = _attribution(v)
        attribution = f"; {why_more}" if why_more else ""
        if scope == "task_type":
            yield _task_type_breaker(options, v, window, example, attribution)
            continue
        also = f" and {_label(v.confounded_with)}" if v.confounded_with else ""
        yield Finding(
            kind="error-rate",
            subject=f"{scope}:{name}",
            severity=Severity.critical if critical else None,
            summary=(
                f"{scope.capitalize()} {name} failed {failures} of {runs} runs ({rate:.0%}) in the "
                f"last {window}, {_unusual(v)}, above the {options.max_error_rate:.0%} "
                f"circuit-breaker limit{attribution}{example}"
            ),
            evidence=_breaker_evidence(options, v),
            title=f"Pause {scope} {name}{also}: {rate:.0%} of its runs fail",
            why=(
                f"When more than {options.max_error_rate:.0%} of what {_article(scope)} {scope} "
                "runs fails, each "
                "new task sent to it most likely fails too, wasting a run and its cost and pushing "
                "tasks toward the dead-letter limit; the seed's circuit breaker pauses it there."
            ),
            action=(
                f"Pause {scope} {name} (route its tasks elsewhere), find the common cause in its "
                "recent errors (credentials, quota, outage, a bad release), fix it, and resume "
                "with a few tasks before full load."
                + (
                    f" Check {_label(v.confounded_with)} too: the data cannot tell the two apart."
                    if v.confounded_with
                    else ""
                )
            ),
            remedy="pause",
            control=ControlSpec(kind=ControlKind.pause, target=f"{scope}:{name}"),
            task_type="heal",
        )


def _breaker_evidence(options: Settings, v: _Verdict) -> dict[str, Any]:
    (scope, name), tally = v.scope, v.tally
    return {
        "scope": scope,
        "name": name,
        "runs": tally.runs,
        "failures": tally.failures,
        "failure_rate": round(tally.rate, 3),
        "own_failure_rate": round(v.own_rate, 3),
        "limit": options.max_error_rate,
        "runs_elsewhere": v.elsewhere.runs,
        "failures_elsewhere": v.elsewhere.failures,
        "p_value": float(f"{v.p_value:.3g}") if v.p_value is not None else None,
        "without": [
            {
                "scope": f"{d[0]}:{d[1]}",
                "runs": c_d.runs,
                "failures": c_d.failures,
                "still_anomalous": ca,
                "other_runs": d_c.runs,
                "other_failures": d_c.failures,
                "other_anomalous": da,
            }
            for d, c_d, d_c, ca, da in v.checked
        ],
        "confounded_with": f"{v.confounded_with[0]}:{v.confounded_with[1]}"
        if v.confounded_with
        else None,
        "explains": [f"{k[0]}:{k[1]}" for k in v.explains or []],
        "first_run_at": tally.first_at,
        "last_run_at": tally.last_at,
        "sample_error": tally.sample_error,
    }


def _article(word: str) -> str:
    return "an" if word[:1] in ("a", "e", "i", "o", "u") else "a"


def _task_type_breaker(
    options: Settings, v: _Verdict, window: str, example: str, attribution: str
) -> Finding:
    """A task type failing wherever it runs: hold its work, do not blame the runners."""
    name, tally = v.scope[1], v.tally
    runs, failures, rate = tally.runs, tally.failures, tally.rate
    where = (
        f", {_unusual(v)}" if v.confounded_with else f" across executors and models, {_unusual(v)}"
    )
    return Finding(
        kind="error-rate",
        subject=f"task_type:{name}",
        severity=Severity.critical if rate >= options.critical_error_rate else None,
        summary=(
            f"{name} tasks failed {failures} of {runs} runs ({rate:.0%}) in the last {window}"
            f"{where}, above the {options.max_error_rate:.0%} circuit-breaker "
            f"limit{attribution}{example}"
        ),
        evidence=_breaker_evidence(options, v),
        title=f"Hold {name} tasks: {rate:.0%} of their runs fail",
        why=(
            f"When more than {options.max_error_rate:.0%} of the runs of one task type fail and "
            "it stays anomalous wherever it runs, the cause is in the work itself (its inputs, "
            "a tool or service it needs, its time limit), so pausing executors or models would "
            "not help; every retry spends a run and pushes tasks toward the dead-letter limit."
        ),
        action=(
            f"Hold new {name} tasks (or cap their retries), read their recent errors to find the "
            "common cause (see timeout-pattern and repeated-failure findings of the same tasks), "
            "fix it, and release a few tasks before the rest."
            + (
                f" Check {_label(v.confounded_with)} too: every such run went through it, so the "
                "data cannot tell the two apart."
                if v.confounded_with
                else ""
            )
        ),
        remedy="pause",
        control=ControlSpec(kind=ControlKind.hold, target=f"task_type:{name}"),
        task_type="heal",
    )
