"""Rule behaviour as data: every case in tests/cases/<rule-id>.toml is a test.

A case gives a rule's options, the records in the store, files in the
workspace and the instant of the review, and says which (kind, subject)
findings must come out: all of them and nothing else. See
tests/cases/README.md for the format.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rules import REGISTRY, Finding
from store import open_store
from tests.pg import fresh_schema_url
from tests.support import expand_series, make_store

CASES_DIR = Path(__file__).parent / "cases"


def _load() -> list[Any]:
    params = []
    for path in sorted(CASES_DIR.glob("*.toml")):
        rule_id = path.stem
        data = tomllib.loads(path.read_text())
        for case in data.get("case", []):
            params.append(pytest.param(rule_id, case, id=f"{rule_id}: {case['name']}"))
    return params


CASES = _load()


def test_every_rule_has_cases_that_fire_and_stay_silent() -> None:
    by_rule: dict[str, set[bool]] = {}
    for p in CASES:
        rule_id, case = p.values
        by_rule.setdefault(rule_id, set()).add(bool(case["expect"]))
    for rule_id in REGISTRY:
        assert by_rule.get(rule_id) == {True, False}, (
            f"tests/cases/{rule_id}.toml needs cases that fire and cases that stay silent"
        )


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session")
def pg_cases_url() -> Iterator[str]:
    """One PostgreSQL schema for all cases; each case empties it first."""
    with fresh_schema_url("reviewer_cases") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest) -> str | None:
    """None for in-memory SQLite, else the URL of an emptied PostgreSQL schema."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_cases_url")
    store = open_store(url)
    try:
        tables = [
            r["table_name"]
            for r in store.query(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_name != 'reviewer_meta'"
            )
        ]
        store.execute(f"TRUNCATE {', '.join(tables)}")
    finally:
        store.close()
    return url


def _run_case(
    rule_id: str, case: dict[str, Any], tmp_path: Path, store_url: str | None
) -> list[Finding]:
    module = REGISTRY[rule_id]
    generated = expand_series(case.get("series", []))
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = make_store(
        tmp_path,
        tasks=[*case.get("tasks", []), *generated["tasks"]],
        metrics=[*case.get("metrics", []), *generated["metrics"]],
        test_results=[*case.get("test_results", []), *generated["test_results"]],
        coverage=[*case.get("coverage", []), *generated["coverage"]],
        specs=case.get("specs"),
        repo=case.get("repo"),
        commits=case.get("commits"),
        url=store_url,
    )
    try:
        options = module.Options.model_validate(case.get("options", {}))
        return list(module.check(options, store.view(case["now"])))
    finally:
        store.close()


def _said(f: Finding) -> tuple[str, str, str, str]:
    return (f.kind, f.subject, f.summary, json.dumps(f.evidence, sort_keys=True, default=str))


@pytest.mark.parametrize(("rule_id", "case"), CASES)
def test_rule_case(
    rule_id: str, case: dict[str, Any], tmp_path: Path, store_url: str | None
) -> None:
    """The case holds on every store: SQLite always, PostgreSQL where there is one."""
    findings = _run_case(rule_id, case, tmp_path, store_url)
    if store_url is not None:
        # PostgreSQL must not merely pass: it must say exactly what SQLite says.
        on_sqlite = _run_case(rule_id, case, tmp_path / "sqlite", None)
        assert [_said(f) for f in findings] == [_said(f) for f in on_sqlite]
    got = sorted((f.kind, f.subject) for f in findings)
    want = sorted((e["kind"], e["subject"]) for e in case["expect"])
    assert got == want, "\n".join(f"{f.kind} {f.subject}: {f.summary}" for f in findings)
    for f in findings:
        assert f.summary and f.evidence, f"{f.kind} {f.subject}: summary and evidence are required"
        # A person cannot use inf or NaN: never in the text, never in the evidence.
        json.dumps(f.evidence, allow_nan=False, default=str)
        assert not re.search(r"\b(inf|nan)\b", f.summary, re.IGNORECASE), f.summary
    for expected in case["expect"]:
        match = next(
            f for f in findings if (f.kind, f.subject) == (expected["kind"], expected["subject"])
        )
        for key, value in expected.get("evidence", {}).items():
            assert match.evidence.get(key) == value, f"evidence {key}: {match.evidence.get(key)!r}"
        if "summary_contains" in expected:
            assert expected["summary_contains"] in match.summary, match.summary
        if "control" in expected:  # the control approving applies; "none" for none
            got_control = (
                match.control.model_dump(mode="json", exclude_none=True)
                if match.control
                else "none"
            )
            assert got_control == expected["control"], got_control
        if "severity" in expected:
            assert match.severity is not None and match.severity.value == expected["severity"]
