"""stuck-phases, the failure kinds: ``timeout-pattern``, ``repeated-failure``, ``error-rate``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from scipy.stats import fisher_exact

from rules.contract import Finding, Severity
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


def _tally(cells: list[dict[str, Any]], scope: str, name: str, skip: dict[str, set[str]]) -> _Tally:
    """The scope's runs, leaving out cells of scopes already taken in other dimensions."""
    tally = _Tally()
    for cell in cells:
        if cell[scope] != name:
            continue
        if any(cell[other] in names for other, names in skip.items() if other != scope):
            continue
        tally.add(cell)
    return tally


def _breakers(options: Settings, view: BacklogView) -> Iterator[tuple[str, str, _Tally, _Tally]]:
    """Executors, models and task types past the breaker, each with its raw tally and own share.

    A broken executor fails on every model it runs (and a broken model on every
    executor); a task type that times out fails on all of them. The worst scope
    is taken first, and the next ones are judged without the runs of the scopes
    already taken in the other dimensions, so only causes are reported.
    """
    cells = view.failure_cells(options.error_window)
    scopes = [s for s in SCOPES if s in options.error_scopes]
    names = {(scope, c[scope]) for c in cells for scope in scopes if c[scope]}

    def passes(t: _Tally) -> bool:
        return t.runs >= options.min_runs and t.rate > options.max_error_rate

    raw = {key: _tally(cells, *key, {}) for key in sorted(names)}
    taken: dict[str, set[str]] = {scope: set() for scope in SCOPES}
    ranked = sorted(raw.items(), key=lambda kv: (-kv[1].rate, -kv[1].failures, kv[0]))
    for (scope, name), tally in ranked:
        if not passes(tally):
            continue
        own = _tally(cells, scope, name, taken)
        if passes(own):
            taken[scope].add(name)
            yield scope, name, tally, own


def error_rates(options: Settings, view: BacklogView) -> Iterator[Finding]:
    """Executors, models and task types failing at circuit-breaker rates."""
    window = fmt_duration(options.error_window)
    for scope, name, tally, own in _breakers(options, view):
        runs, failures, rate = tally.runs, tally.failures, tally.rate
        critical = rate >= options.critical_error_rate
        error = tally.sample_error
        example = f"; e.g. {error[:200]}" if error else ""
        if scope == "task_type":
            yield _task_type_breaker(options, name, tally, own, window, example)
            continue
        yield Finding(
            kind="error-rate",
            subject=f"{scope}:{name}",
            severity=Severity.critical if critical else None,
            summary=(
                f"{scope.capitalize()} {name} failed {failures} of {runs} runs ({rate:.0%}) in the "
                f"last {window}, above the {options.max_error_rate:.0%} circuit-breaker "
                f"limit{example}"
            ),
            evidence=_breaker_evidence(options, scope, name, tally, own),
            title=f"Pause {scope} {name}: {rate:.0%} of its runs fail",
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
            ),
            remedy="pause",
            task_type="heal",
        )


def _breaker_evidence(
    options: Settings, scope: str, name: str, tally: _Tally, own: _Tally
) -> dict[str, Any]:
    return {
        "scope": scope,
        "name": name,
        "runs": tally.runs,
        "failures": tally.failures,
        "failure_rate": round(tally.rate, 3),
        "own_failure_rate": round(own.rate, 3),
        "limit": options.max_error_rate,
        "first_run_at": tally.first_at,
        "last_run_at": tally.last_at,
        "sample_error": tally.sample_error,
    }


def _article(word: str) -> str:
    return "an" if word[:1] in ("a", "e", "i", "o", "u") else "a"


def _task_type_breaker(
    options: Settings, name: str, tally: _Tally, own: _Tally, window: str, example: str
) -> Finding:
    """A task type failing wherever it runs: hold its work, do not blame the runners."""
    runs, failures, rate = tally.runs, tally.failures, tally.rate
    return Finding(
        kind="error-rate",
        subject=f"task_type:{name}",
        severity=Severity.critical if rate >= options.critical_error_rate else None,
        summary=(
            f"{name} tasks failed {failures} of {runs} runs ({rate:.0%}) in the last {window}, "
            f"across executors and models, above the {options.max_error_rate:.0%} "
            f"circuit-breaker limit{example}"
        ),
        evidence=_breaker_evidence(options, "task_type", name, tally, own),
        title=f"Hold {name} tasks: {rate:.0%} of their runs fail",
        why=(
            f"When more than {options.max_error_rate:.0%} of the runs of one task type fail on "
            "every executor and model, the cause is in the work itself (its inputs, a tool or "
            "service it needs, its time limit), so pausing executors or models would not help; "
            "every retry spends a run and pushes tasks toward the dead-letter limit."
        ),
        action=(
            f"Hold new {name} tasks (or cap their retries), read their recent errors to find the "
            "common cause (see timeout-pattern and repeated-failure findings of the same tasks), "
            "fix it, and release a few tasks before the rest."
        ),
        remedy="pause",
        task_type="heal",
    )
