"""JUnit XML ingest: real reports from pytest, Maven Surefire and jest-junit, and hostile ones."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reviewer.cli import cli
from reviewer.ingest import ingest_junit
from store.sqlite import SQLiteStore

DATA = Path(__file__).parent / "data" / "junit"


def _results(db: Path) -> dict[str, dict[str, Any]]:
    store = SQLiteStore(db)
    try:
        rows = store.query("SELECT * FROM test_results ORDER BY run_id, test_id")
    finally:
        store.close()
    return {f"{r['run_id']}/{r['test_id']}": r for r in rows}


def _ingest(tmp_path: Path, *args: str) -> Result:
    config = tmp_path / "config.toml"
    if not config.exists():
        config.write_text(f'[reviewer]\nstore = "sqlite:///{tmp_path / "r.db"}"\n')
    return CliRunner().invoke(cli, ["--config", str(config), "ingest", "junit", *args])


def test_pytest_report(tmp_path: Path) -> None:
    result = _ingest(
        tmp_path,
        str(DATA / "pytest.xml"),
        "--run-id",
        "r1",
        "--commit",
        "a1b2c3",
        "--branch",
        "main",
    )
    assert result.exit_code == 0, result.output
    rows = _results(tmp_path / "r.db")
    assert {k: r["outcome"] for k, r in rows.items()} == {
        "r1/tests.test_api::test_health": "passed",
        "r1/tests.test_api::test_login[admin]": "failed",
        "r1/tests.test_api::test_login[guest]": "passed",
        "r1/tests.test_db::test_migrate": "error",
        "r1/tests.test_db::test_backup": "skipped",
        "r1/tests.test_db::test_restore": "skipped",
    }
    login = rows["r1/tests.test_api::test_login[admin]"]
    assert login["message"].startswith("AssertionError: expected 200, got 503")
    assert (login["commit_sha"], login["branch"], login["classname"], login["name"]) == (
        "a1b2c3",
        "main",
        "tests.test_api",
        "test_login[admin]",
    )
    # pytest stamps local naive time with microseconds; naive means UTC.
    assert login["ran_at"] == "2026-03-01T10:15:02Z"
    assert login["duration_seconds"] == pytest.approx(0.112)
    assert rows["r1/tests.test_db::test_backup"]["message"] == "needs S3 credentials"


def test_surefire_reruns(tmp_path: Path) -> None:
    result = _ingest(tmp_path, str(DATA / "surefire.xml"), "--run-id", "m1", "--commit", "c0ffee")
    assert result.exit_code == 0, result.output
    rows = _results(tmp_path / "r.db")
    prefix = "m1/com.example.shop.CartTest::"
    outcomes = {k.removeprefix(prefix): r["outcome"] for k, r in rows.items()}
    assert outcomes == {
        "addsItem": "passed",
        "appliesDiscount": "flaky",  # flakyFailure: failed, then passed on a rerun
        "removesItem": "flaky",  # flakyError
        "checkout": "failed",  # failure plus rerunFailure: failed every attempt
        "legacyCoupon": "skipped",
    }
    assert rows[prefix + "appliesDiscount"]["message"] == "expected: <10.00> but was: <9.99>"
    assert rows[prefix + "checkout"]["message"] == "Payment gateway returned 500"
    assert rows[prefix + "legacyCoupon"]["message"] == "@Disabled: coupons v1 removed in 4.2"
    assert rows[prefix + "addsItem"]["branch"] is None


def test_jest_report(tmp_path: Path) -> None:
    result = _ingest(tmp_path, str(DATA / "jest.xml"), "--run-id", "j1", "--commit", "abc")
    assert result.exit_code == 0, result.output
    rows = _results(tmp_path / "r.db")
    tax = rows["j1/Cart totals with tax::Cart totals with tax"]
    assert tax["outcome"] == "failed"
    # jest-junit gives no message attribute: the first line of the text stands in.
    assert tax["message"] == "Error: expect(received).toBe(expected) // Object.is equality"
    todo = rows["j1/Cart todo: refunds::Cart todo: refunds"]
    assert (todo["outcome"], todo["message"]) == ("skipped", None)
    # Each suite keeps its own timestamp.
    assert rows["j1/Checkout submits the order::Checkout submits the order"]["ran_at"] == (
        "2026-03-01T10:20:13Z"
    )
    assert len(rows) == 4


def test_malformed_file_names_file_and_line_and_the_rest_is_stored(tmp_path: Path) -> None:
    bad = DATA / "malformed.xml"
    result = _ingest(
        tmp_path, str(DATA / "pytest.xml"), str(bad), str(DATA / "jest.xml"),
        "--run-id", "r2", "--commit", "def",
    )  # fmt: skip
    assert result.exit_code == 1
    # expat notices the mismatched </testcase> on line 6
    assert f"{bad}:6: not well-formed XML" in result.output
    assert "stored 10 record(s), rejected 1" in result.output
    assert len(_results(tmp_path / "r.db")) == 10


def test_missing_file_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "nope.xml"
    result = _ingest(tmp_path, str(missing), "--run-id", "r3", "--commit", "x")
    assert result.exit_code == 1
    assert f"{missing}: file not found" in result.output


def test_external_entity_is_refused_without_reading_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-TOKEN")
    xxe = tmp_path / "xxe.xml"
    xxe.write_text((DATA / "xxe.xml").read_text().replace("file:///etc/hostname", secret.as_uri()))
    opened: list[str] = []

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and args and str(args[0]) == str(secret):
            opened.append(event)

    # An audit hook cannot be removed, so it only records opens of this test's file.
    sys.addaudithook(audit)
    result = _ingest(
        tmp_path, str(xxe), str(DATA / "jest.xml"), "--run-id", "x1", "--commit", "evil"
    )
    assert result.exit_code == 1
    assert f"{xxe}: refused unsafe XML (EntitiesForbidden" in result.output
    assert not opened, "the external entity's file was opened"
    rows = _results(tmp_path / "r.db")
    assert len(rows) == 4  # the good file of the same run is stored
    assert "TOP-SECRET-TOKEN" not in result.output
    assert not any("TOP-SECRET-TOKEN" in str(r["message"]) for r in rows.values())


def test_entity_bomb_is_refused_without_expanding(tmp_path: Path) -> None:
    bomb = DATA / "billion-laughs.xml"
    started = time.perf_counter()
    result = _ingest(tmp_path, str(bomb), "--run-id", "b1", "--commit", "lol")
    elapsed = time.perf_counter() - started
    assert result.exit_code == 1
    assert f"{bomb}: refused unsafe XML (EntitiesForbidden" in result.output
    assert "lollol" not in result.output
    # Expanding 10^9 "lol"s would take gigabytes and minutes; refusing takes no time.
    assert elapsed < 5, f"took {elapsed:.1f}s"
    assert _results(tmp_path / "r.db") == {}


def test_not_a_junit_report(tmp_path: Path) -> None:
    other = tmp_path / "page.xml"
    other.write_text("<html><body/></html>")
    result = _ingest(tmp_path, str(other), "--run-id", "h1", "--commit", "x")
    assert result.exit_code == 1
    assert f"{other}:1: expected <testsuites> or <testsuite>, found <html>" in result.output


def test_reingesting_a_run_is_idempotent(tmp_path: Path) -> None:
    files = [DATA / "pytest.xml", DATA / "surefire.xml", DATA / "jest.xml"]
    store = SQLiteStore(tmp_path / "r.db")
    try:
        first = ingest_junit(store, files, run_id="r1", commit="c1", now="2026-03-01T11:00:00Z")
        before = store.query("SELECT * FROM test_results ORDER BY test_id")
        # Later, the same run again: Surefire's files carry no timestamp, and the run
        # must keep the time it was first stored with, not take the new "now".
        again = ingest_junit(store, files, run_id="r1", commit="c1", now="2026-03-02T09:00:00Z")
        after = store.query("SELECT * FROM test_results ORDER BY test_id")
    finally:
        store.close()
    assert first.ok and again.ok
    assert first.stored == again.stored == len(before) == 15
    assert after == before
    surefire = [r for r in after if r["classname"] == "com.example.shop.CartTest"]
    assert {r["ran_at"] for r in surefire} == {"2026-03-01T11:00:00Z"}


def test_a_test_reported_twice_in_one_run_is_one_result(tmp_path: Path) -> None:
    # pytest-rerunfailures and split reports can list a test twice in one run.
    report = tmp_path / "rerun.xml"
    report.write_text(
        '<testsuite name="pytest" timestamp="2026-03-01T10:00:00">'
        '<testcase classname="t.A" name="net"><failure message="reset"/></testcase>'
        '<testcase classname="t.A" name="net"/>'
        '<testcase classname="t.A" name="skip"><skipped message="later"/></testcase>'
        '<testcase classname="t.A" name="skip"><error message="boom"/></testcase>'
        "</testsuite>"
    )
    result = _ingest(tmp_path, str(report), "--run-id", "d1", "--commit", "x")
    assert result.exit_code == 0, result.output
    rows = _results(tmp_path / "r.db")
    assert (rows["d1/t.A::net"]["outcome"], rows["d1/t.A::net"]["message"]) == ("flaky", "reset")
    assert (rows["d1/t.A::skip"]["outcome"], rows["d1/t.A::skip"]["message"]) == ("error", "boom")


@pytest.mark.parametrize(
    "stamp", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00", "0001-01-01T00:00:00+05:00"]
)
def test_suite_timestamp_out_of_range_is_named_and_results_kept(tmp_path: Path, stamp: str) -> None:
    report_file = tmp_path / "range.xml"
    report_file.write_text(
        "<testsuites>"
        f'<testsuite name="far" timestamp="{stamp}"><testcase classname="c" name="a"/></testsuite>'
        '<testsuite name="near" timestamp="2026-03-01T10:00:00">'
        '<testcase classname="c" name="b"/></testsuite>'
        "</testsuites>"
    )
    result = _ingest(tmp_path, str(report_file), "--run-id", "r1", "--commit", "abc")
    assert result.exit_code == 0, result.stderr
    assert f"{report_file}: <testsuite name='far'> attribute 'timestamp'" in result.stderr
    assert repr(stamp) in result.stderr
    assert "'near'" not in result.stderr
    rows = _results(tmp_path / "r.db")
    assert set(rows) == {"r1/c::a", "r1/c::b"}
    assert rows["r1/c::b"]["ran_at"] == "2026-03-01T10:00:00Z"
    assert rows["r1/c::a"]["ran_at"][:4] not in ("9999", "0001")  # the load time
