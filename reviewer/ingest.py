"""Loading pipeline records into a store: JSON Lines tasks and metrics, JUnit XML.

A bad record never costs the good ones: each is checked on its own, the good
ones are stored, and every rejection is reported with the file, the line and
the field. JUnit XML is parsed with defusedxml, so external entities and
entity expansion bombs are refused instead of followed.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml
from defusedxml import ElementTree as SafeET
from pydantic import ValidationError

from store.base import Store
from store.records import DURATION_MAX_S, MetricRecord, TaskRecord, describe_errors, plain_row
from store.timeutil import norm_ts

log = logging.getLogger("reviewer.ingest")

RECORD_MODELS: dict[str, type[TaskRecord] | type[MetricRecord]] = {
    "tasks": TaskRecord,
    "metrics": MetricRecord,
}


@dataclass
class IngestReport:
    """How many records a load stored and what it rejected, and why."""

    stored: int = 0
    # The messages: one record with three bad fields gives three.
    rejected: list[str] = field(default_factory=list)
    # Records refused (a JSON Lines line, an item of a posted list); None where the
    # messages are the count (a file that could not be read at all).
    rejected_records: int | None = None
    warnings: list[str] = field(default_factory=list)
    # Records dated after the load (stored, but no rule sees them before that time).
    future: int = 0
    latest_future: str | None = None
    first_future_at: str = ""

    _grace_of: tuple[str, str] = field(default=("", ""), repr=False, compare=False)

    def saw(self, row: dict[str, Any], now: str, where: str) -> None:
        """Count a stored row whose timestamps lie ahead of ``now`` (beyond 5 minutes)."""
        if self._grace_of[0] != now:
            self._grace_of = (now, _grace(now))
        grace = self._grace_of[1]
        ahead = max((row[k] for k in _TIME_FIELDS if row.get(k)), default=None)
        if ahead is not None and ahead > grace:
            self.future += 1
            if self.latest_future is None or ahead > self.latest_future:
                self.latest_future = ahead
                self.first_future_at = where

    def finish(self, now: str) -> None:
        if self.future:
            self.warnings.append(
                f"{self.future} record(s) are dated after now ({now}), the latest "
                f"{self.latest_future} ({self.first_future_at}); they are stored, but no rule "
                "sees them until that time: check the pipeline's clock and time zone"
            )

    @property
    def ok(self) -> bool:
        return not self.rejected

    @property
    def rejected_count(self) -> int:
        """How many records were refused (not how many messages say why)."""
        if self.rejected_records is not None:
            return self.rejected_records
        return len(self.rejected)

    def refuse(self, messages: list[str]) -> None:
        """One record refused, for these reasons."""
        self.rejected.extend(messages)
        self.rejected_records = (self.rejected_records or 0) + 1

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stored": self.stored,
            "rejected": self.rejected_count,
            "errors": self.rejected,
        }
        if self.warnings:
            out["warnings"] = self.warnings
        return out


_TIME_FIELDS = ("created_at", "updated_at", "started_at", "finished_at", "ran_at")


def _grace(now: str) -> str:
    from store.timeutil import fmt_ts, parse_ts

    return fmt_ts(parse_ts(now) + timedelta(minutes=5))


# Rows per write transaction: a file of any size never holds the store's write lock
# for longer than one batch takes (a few seconds at most), so the pipeline's own
# writers and the reviewer's other commands get their turn between batches.
INGEST_BATCH = 5000


def _jsonl_rows(path: Path, kind: str, now: str, report: IngestReport) -> Iterator[dict[str, Any]]:
    model = RECORD_MODELS[kind]
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                report.refuse(
                    [f"{path}:{lineno}: not valid UTF-8 (byte {exc.start + 1} of the line)"]
                )
                continue
            if not text:
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                report.refuse([f"{path}:{lineno}: not valid JSON: {exc.msg} (column {exc.colno})"])
                continue
            except RecursionError:
                report.refuse([f"{path}:{lineno}: JSON nested too deeply"])
                continue
            if not isinstance(data, dict):
                report.refuse(
                    [f"{path}:{lineno}: expected a JSON object, got {type(data).__name__}"]
                )
                continue
            # Plainly valid records skip the model (same row); the rest it converts or names.
            row = plain_row(model, data)
            if row is None:
                try:
                    row = model.model_validate(data).row()
                except ValidationError as exc:
                    report.refuse([f"{path}:{lineno}: {msg}" for msg in describe_errors(exc)])
                    continue
            if kind == "tasks" and not row["created_at"]:
                row["created_at"] = now
            report.saw(row, now, f"{path}:{lineno}")
            yield row


def ingest_jsonl(store: Store, path: str | Path, kind: str, *, now: str) -> IngestReport:
    """Load a JSON Lines file of ``tasks`` or ``metrics``; upserts by id."""
    p = Path(path)
    report = IngestReport()
    if kind not in RECORD_MODELS:
        raise ValueError(f"unknown record kind {kind!r}; expected tasks or metrics")
    if not p.is_file():
        report.rejected.append(f"{p}: file not found")
        return report
    upsert = store.upsert_tasks if kind == "tasks" else store.upsert_metrics
    # One transaction per batch: what was committed stays stored if a later batch fails.
    rows = _jsonl_rows(p, kind, now, report)
    while batch := list(itertools.islice(rows, INGEST_BATCH)):
        report.stored += upsert(batch)
    report.finish(now)
    return report


def store_records(
    store: Store, kind: str, items: Sequence[dict[str, Any]], *, now: str
) -> IngestReport:
    """Validate and store already-parsed records (the HTTP API's path).

    All or nothing: if any record is invalid nothing is stored, so a client
    can fix its payload and send it again without creating half a batch.
    """
    model = RECORD_MODELS[kind]
    report = IngestReport()
    rows = []
    for i, data in enumerate(items):
        try:
            rows.append(model.model_validate(data).row())
        except ValidationError as exc:
            where = f"[{i}] " if len(items) > 1 else ""
            report.refuse([f"{where}{msg}" for msg in describe_errors(exc)])
    if report.rejected:
        return report
    for i, row in enumerate(rows):
        if kind == "tasks" and not row["created_at"]:
            row["created_at"] = now
        report.saw(row, now, f"[{i}]")
    report.finish(now)
    report.stored = store.upsert_tasks(rows) if kind == "tasks" else store.upsert_metrics(rows)
    return report


# -- JUnit XML -------------------------------------------------------------------

_OUTCOME_TAGS = ("failure", "error", "skipped")
# Reruns inside one run (Surefire's flakyFailure, pytest-rerunfailures' rerunFailure).
_RERUN_TAGS = ("flakyFailure", "flakyError", "rerunFailure", "rerunError")


def _message(el: Element) -> str:
    text = (el.get("message") or "").strip()
    if not text:
        text = (el.text or "").strip().splitlines()[0] if (el.text or "").strip() else ""
    return text[:500]


def _case_time(case: Element) -> tuple[float | None, str | None]:
    """A test case's ``time`` in seconds, or None and why it was dropped."""
    raw = case.get("time")
    if raw is None or not raw.strip():
        return 0.0, None
    try:
        duration = float(raw.replace(",", ""))
    except ValueError:
        return None, "is not a number"
    if not math.isfinite(duration):
        return None, "is not a finite number"
    if duration < 0:
        return None, "is negative"
    if duration > DURATION_MAX_S:
        return None, f"is above {DURATION_MAX_S:g} s"
    return duration, None


def _testcase_row(case: Element, suite: Element, ran_at: str) -> dict[str, Any]:
    classname = case.get("classname") or suite.get("name") or ""
    name = case.get("name") or ""
    outcome, message = "passed", None
    # A run without a message stores none (NULL), not the element's tag name, so
    # rules can tell "no message" from a message.
    for tag in _OUTCOME_TAGS:
        el = case.find(tag)
        if el is not None:
            outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
            message = _message(el) or None
            break
    if outcome == "passed":
        reruns = [el for tag in _RERUN_TAGS for el in case.findall(tag)]
        if reruns:
            outcome = "flaky"  # failed, then passed on a rerun within the same run
            message = _message(reruns[0]) or None
    # time="1e999", a negative time or one above the cap: no duration, never inf or < 0.
    duration, _ = _case_time(case)
    return {
        "test_id": f"{classname}::{name}",
        "classname": classname,
        "name": name,
        "outcome": outcome,
        "duration_seconds": duration,
        "message": message,
        "file": case.get("file") or suite.get("file"),
        "ran_at": ran_at,
    }


def _merge_rerun(rows: list[dict[str, Any]], seen: dict[str, int], row: dict[str, Any]) -> None:
    """Add a test case to one run's rows; a test reported twice is one result.

    A rerun plugin (or a test split over two files) reports a test twice in one
    run: a pass and a failure make it flaky in this run, not two results; any
    failure outranks a pass or a skip, and a real result outranks a skip.
    """
    index = seen.get(row["test_id"])
    if index is None:
        seen[row["test_id"]] = len(rows)
        rows.append(row)
        return
    prev = rows[index]
    outcomes = {prev["outcome"], row["outcome"]}
    if "flaky" in outcomes or ("passed" in outcomes and outcomes & {"failed", "error"}):
        # Keep the failure's message: the pass has none worth keeping.
        failed_first = prev["outcome"] != "passed"
        prev["message"] = (prev if failed_first else row)["message"] or prev["message"]
        prev["outcome"] = "flaky"
    elif _RANK[row["outcome"]] > _RANK[prev["outcome"]]:
        prev["outcome"], prev["message"] = row["outcome"], row["message"]


# Which of two results of one test in one run speaks for it (flaky handled apart).
_RANK = {"skipped": 0, "passed": 1, "failed": 2, "error": 3, "flaky": 4}


def parse_xml(path: Path, what: str) -> Any:
    """The root element of an XML report parsed safely (defusedxml); ValueError naming the
    file and line when it is not well-formed, or the file when it asks for DTD entities."""
    try:
        return SafeET.parse(str(path)).getroot()
    except ParseError as exc:
        line = getattr(exc, "position", (0, 0))[0]
        raise ValueError(f"{path}:{line}: not well-formed XML: {exc}") from None
    except defusedxml.DefusedXmlException as exc:
        raise ValueError(
            f"{path}: refused unsafe XML ({type(exc).__name__}: {exc}); {what} need no DTD entities"
        ) from None


def parse_junit(
    path: Path, *, default_ran_at: str, warnings: list[str] | None = None
) -> list[dict[str, Any]]:
    """The test cases of one JUnit XML file; raises ValueError naming file and line.

    A suite whose ``timestamp`` is no usable time (unparseable, or outside the
    years the store holds) keeps its results, dated ``default_ran_at``; the
    message naming file and suite goes to ``warnings``.
    """
    root = parse_xml(path, "JUnit reports")
    if root.tag not in ("testsuite", "testsuites"):
        raise ValueError(f"{path}:1: expected <testsuites> or <testsuite>, found <{root.tag}>")
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    # iter() includes the root itself and suites nested in suites (JUnit allows both).
    for suite in root.iter("testsuite"):
        stamp = suite.get("timestamp")
        try:
            ran_at = (norm_ts(stamp) if stamp else None) or default_ran_at
        except (ValueError, OverflowError) as exc:
            ran_at = default_ran_at
            if warnings is not None:
                warnings.append(
                    f"{path}: <testsuite name={suite.get('name') or ''!r}> attribute "
                    f"'timestamp': {stamp!r} is not a usable time ({exc}); its results "
                    "are dated at the load time"
                )
        for case in suite.findall("testcase"):
            row = _testcase_row(case, suite, ran_at)
            if row["duration_seconds"] is None and warnings is not None:
                why = _case_time(case)[1]
                warnings.append(
                    f"{path}: <testcase {row['test_id']!r}> attribute 'time': "
                    f"{case.get('time')!r} {why}; "
                    "stored without a duration"
                )
            _merge_rerun(rows, seen, row)
    return rows


def _stored_times(store: Store, run_id: str) -> dict[str, str]:
    """When each test of an already-stored run ran, so loading the run again keeps it."""
    rows = store.query(
        "SELECT test_id, ran_at FROM test_results WHERE run_id = :run_id", {"run_id": run_id}
    )
    return {r["test_id"]: r["ran_at"] for r in rows}


def ingest_junit(
    store: Store,
    paths: Sequence[str | Path],
    *,
    run_id: str,
    commit: str,
    branch: str | None = None,
    now: str,
) -> IngestReport:
    """Load JUnit XML files of one test run; a broken file is reported, the rest stored."""
    report = IngestReport()
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for raw in paths:
        p = Path(raw)
        if not p.is_file():
            report.rejected.append(f"{p}: file not found")
            continue
        try:
            cases = parse_junit(p, default_ran_at="", warnings=report.warnings)
        except ValueError as exc:
            report.rejected.append(str(exc))
            continue
        for row in cases:
            row.update(run_id=run_id, commit_sha=commit, branch=branch)
            _merge_rerun(rows, seen, row)
    # Suites without a timestamp (Surefire writes none) ran "now", unless this run
    # was loaded before: then they keep their stored time, so a reload changes nothing.
    undated = [row for row in rows if not row["ran_at"]]
    stored = _stored_times(store, run_id) if undated else {}
    for row in undated:
        row["ran_at"] = stored.get(row["test_id"], now)
    for start in range(0, len(rows), INGEST_BATCH):
        report.stored += store.upsert_test_results(rows[start : start + INGEST_BATCH])
    return report
