"""Cobertura XML ingest: what coverage.py and JaCoCo (converted) write, bad parts, the API."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient

from reviewer.api import create_app
from reviewer.app import App
from reviewer.cli import main
from reviewer.ingest_coverage import ingest_coverage
from store import SQLiteStore
from tests.support import make_config

# The shape `coverage xml` (coverage.py 7) writes: ms timestamp, classes per file.
COVERAGE_PY = """<?xml version="1.0" ?>
<coverage version="7.4.0" timestamp="1772700000000" lines-valid="6" lines-covered="4"
          line-rate="0.6667" branches-covered="1" branches-valid="2" complexity="0">
  <sources><source>/repo/api</source></sources>
  <packages><package name="app" line-rate="0.6667"><classes>
    <class name="metrics.py" filename="app/metrics.py" complexity="0" line-rate="0.75">
      <methods/>
      <lines>
        <line number="1" hits="1"/><line number="2" hits="3"/><line number="3" hits="0"/>
        <line number="4" hits="1" branch="true" condition-coverage="50% (1/2)"/>
      </lines>
    </class>
    <class name="models.py" filename="app/models.py" line-rate="0.5">
      <lines><line number="1" hits="1"/><line number="2" hits="0"/></lines>
    </class>
  </classes></package></packages>
</coverage>
"""

# JaCoCo through cover2cover: Java classes, inner classes sharing one source file.
JACOCO = """<?xml version="1.0" ?>
<!DOCTYPE coverage SYSTEM "http://cobertura.sourceforge.net/xml/coverage-04.dtd">
<coverage line-rate="0.5" branch-rate="0.0" timestamp="1772700000" version="1">
  <packages><package name="com.acme"><classes>
    <class name="com.acme.Foo" filename="com/acme/Foo.java" line-rate="1.0">
      <lines><line number="3" hits="2" branch="false"/></lines>
    </class>
    <class name="com.acme.Foo$Inner" filename="com/acme/Foo.java" line-rate="0.0">
      <lines><line number="9" hits="0" branch="false"/></lines>
    </class>
  </classes></package></packages>
</coverage>
"""


def _rows(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT commit_sha, branch, file, lines_valid, lines_covered, branches_valid,"
            " branches_covered, recorded_at FROM coverage ORDER BY file"
        ).fetchall()


def test_coverage_py_report_is_stored_per_file(tmp_path: Path) -> None:
    (tmp_path / "c.xml").write_text(COVERAGE_PY)
    store = SQLiteStore(tmp_path / "s.db")
    report = ingest_coverage(
        store, tmp_path / "c.xml", commit="abc", branch="main", now="2026-03-09T00:00:00Z"
    )
    store.close()
    assert report.ok and report.stored == 2
    assert _rows(tmp_path / "s.db") == [
        ("abc", "main", "app/metrics.py", 4, 3, 2, 1, "2026-03-05T08:40:00Z"),
        ("abc", "main", "app/models.py", 2, 1, 0, 0, "2026-03-05T08:40:00Z"),
    ]


def test_jacoco_inner_classes_add_up_in_their_file_and_a_doctype_is_allowed(
    tmp_path: Path,
) -> None:
    (tmp_path / "j.xml").write_text(JACOCO)
    store = SQLiteStore(tmp_path / "s.db")
    report = ingest_coverage(store, tmp_path / "j.xml", commit="def", now="2026-03-09T00:00:00Z")
    store.close()
    assert report.ok, report.rejected
    assert _rows(tmp_path / "s.db") == [
        ("def", None, "com/acme/Foo.java", 2, 1, 0, 0, "2026-03-05T08:40:00Z")
    ]


def test_bad_elements_are_named_and_the_good_files_kept(tmp_path: Path) -> None:
    bad = COVERAGE_PY.replace('filename="app/models.py"', "").replace(
        '<line number="3" hits="0"/>', '<line number="3" hits="lots"/>'
    )
    (tmp_path / "c.xml").write_text(
        bad.replace(
            "</classes>",
            '<class name="ok.py" filename="ok.py"><lines><line number="1" hits="1"/></lines>'
            "</class></classes>",
        )
    )
    store = SQLiteStore(tmp_path / "s.db")
    report = ingest_coverage(store, tmp_path / "c.xml", commit="abc", now="2026-03-09T00:00:00Z")
    store.close()
    assert report.stored == 1
    assert [r[2] for r in _rows(tmp_path / "s.db")] == ["ok.py"]
    assert any(
        "c.xml: <class> #1 (metrics.py): <line number='3'> has no integer hits" in m
        for m in report.rejected
    ), report.rejected
    assert any("<class> #2 (models.py): no filename" in m for m in report.rejected)


def test_unsafe_or_wrong_documents_are_refused_with_the_file_named(tmp_path: Path) -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE c [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
        "<coverage>&b;</coverage>"
    )
    store = SQLiteStore(tmp_path / "s.db")
    for name, text, says in (
        ("bomb.xml", bomb, "refused unsafe XML"),
        ("junit.xml", "<testsuite/>", "expected a Cobertura <coverage> root element"),
        ("cut.xml", "<coverage><packages>", "not well-formed XML"),
    ):
        (tmp_path / name).write_text(text)
        report = ingest_coverage(store, tmp_path / name, commit="x", now="2026-03-09T00:00:00Z")
        assert report.stored == 0 and len(report.rejected) == 1
        assert name in report.rejected[0] and says in report.rejected[0], report.rejected
    store.close()


def test_cli_exits_non_zero_when_a_part_was_rejected(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[reviewer]\nstore = "sqlite:///{tmp_path / "s.db"}"\n')
    (tmp_path / "good.xml").write_text(COVERAGE_PY)
    (tmp_path / "bad.xml").write_text(COVERAGE_PY.replace('filename="app/models.py"', ""))
    codes = []
    for name in ("good.xml", "bad.xml"):
        try:
            main(
                ["--config", str(cfg), "ingest", "coverage", str(tmp_path / name), "--commit", "c1"]
            )
        except SystemExit as exc:
            codes.append(exc.code)
    out = capsys.readouterr()
    assert codes == [0, 1], out
    assert "no filename attribute" in out.err


def test_post_coverage_needs_the_token_and_reports_parts(tmp_path: Path) -> None:
    cfg = make_config({"reviewer": {"store": f"sqlite:///{tmp_path / 'p.db'}", "api_token": "t"}})
    app = App.from_config(cfg)
    with TestClient(create_app(app)) as c:
        assert c.post("/api/coverage?commit=abc", content=COVERAGE_PY).status_code == 401
        auth = {"Authorization": "Bearer t"}
        r = c.post("/api/coverage?commit=abc&branch=main", headers=auth, content=COVERAGE_PY)
        assert r.status_code == 200 and r.json()["stored"] == 2
        bad = c.post("/api/coverage?commit=abc", headers=auth, content="<coverage><packages>")
        assert bad.status_code == 422 and "body" in bad.json()["errors"][0]
    app.close()
    assert len(_rows(tmp_path / "p.db")) == 2
