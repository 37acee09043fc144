"""spec-drift on the real seed spec, and what the case files cannot say: git, shas, mtimes."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rules import Severity, spec_drift
from rules.specs import find_section, parse_sections
from store.workspace import Workspace
from tests.support import git_history, make_store

# The origin spec (a copy of ../shared/seeds, the project's own text), so a plain clone runs these.
SEEDS = Path(__file__).resolve().parent / "data" / "seeds"
SEED_NAME = "004_7932cd015c242d02.txt"
NOW = "2026-03-10T00:00:00Z"
STALE_SPEC = (
    "## Purpose\nx\n## Requirements\n- a\n## Files\n- `src/a.py`\n## Acceptance Tests\n- t\n"
)


@pytest.fixture
def seed_text() -> str:
    return (SEEDS / SEED_NAME).read_text()


def _seed_paths(text: str) -> list[str]:
    """The code paths the seed lists, read with a plain regex rather than the rule's parser."""
    block = text.split("## Files to Create/Modify", 1)[1].split("\n## ", 1)[0]
    return [p for p in re.findall(r"^- `([^`]+)`", block, re.M) if not p.startswith("specs/")]


def _run(tmp_path: Path, seed_text: str, **kw: Any) -> list[Any]:
    specs_dir = tmp_path / "specs"
    shutil.copytree(SEEDS, specs_dir)
    # The seed was written before the review instant (an mtime after it would leave that open).
    written = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    for spec in specs_dir.rglob("*"):
        os.utime(spec, (written, written))
    options = spec_drift.Options(**kw.pop("options", {}))
    store = make_store(tmp_path, specs={}, **kw)
    try:
        return list(spec_drift.check(options, store.view(NOW)))
    finally:
        store.close()


def _impl(files_changed: list[str], spec: str = f"specs/{SEED_NAME}") -> dict[str, Any]:
    return {
        "id": "impl-1",
        "title": "Implement pipeline observability",
        "task_type": "impl",
        "status": "completed",
        "spec": spec,
        "created_at": "2026-03-01T00:00:00Z",
        "finished_at": "2026-03-02T00:00:00Z",
        "files_changed": files_changed,
    }


def test_seed_is_read_as_the_template_expects(seed_text: str) -> None:
    sections = parse_sections(seed_text)
    requirements = find_section(sections, "Requirements")
    acceptance = find_section(sections, "Acceptance Tests")
    files = find_section(sections, "Files to Create/Modify")
    assert requirements and acceptance and files
    assert len(requirements.items()) == seed_text.count("- [ ] **")
    assert len(acceptance.items()) == 3
    listed = [p for p, _ in files.paths()]
    assert [p for p in listed if not p.startswith("specs/")] == _seed_paths(seed_text)
    # The API contract's JSON and the data model's YAML are code blocks, not headings.
    assert not find_section(sections, "TaskMetric:")


def test_seed_with_no_tasks_yields_nothing(tmp_path: Path, seed_text: str) -> None:
    assert _run(tmp_path, seed_text, repo={}) == []


def test_seed_fully_implemented_in_scope_yields_nothing(tmp_path: Path, seed_text: str) -> None:
    paths = _seed_paths(seed_text)
    found = _run(
        tmp_path,
        seed_text,
        repo={p: "x" for p in paths},
        tasks=[_impl([*paths, "tests/test_metrics.py", f"specs/{SEED_NAME}"])],
    )
    assert found == []


def test_seed_after_impl_flags_exactly_the_absent_file_and_the_unlisted_change(
    tmp_path: Path, seed_text: str
) -> None:
    paths = _seed_paths(seed_text)
    absent, present = paths[-1], paths[:-1]
    found = _run(
        tmp_path,
        seed_text,
        repo={p: "x" for p in present},
        tasks=[_impl([*present, "api/app/main.py", "tests/test_metrics.py"], f"./{SEED_NAME}")],
    )
    by_kind = {f.kind: f for f in found}
    assert sorted(by_kind) == ["missing-file", "unrequested-change"]
    missing = by_kind["missing-file"]
    assert (missing.subject, missing.key, missing.evidence["file"]) == (SEED_NAME, absent, absent)
    assert "does not exist" in missing.summary and absent in missing.summary
    # The spec lists itself under specs/ with another name: that is not a missing file.
    assert not any("specs/" in (f.key or "") for f in found)
    assert by_kind["unrequested-change"].evidence["files"] == {"api/app/main.py": ["impl-1"]}


def test_seed_coverage_is_opt_in(tmp_path: Path, seed_text: str) -> None:
    found = _run(tmp_path, seed_text, repo={}, options={"min_covered_fraction": 0.5})
    assert [f.kind for f in found] == ["untestable"]
    assert found[0].evidence["requirements"] == seed_text.count("- [ ] **")
    assert found[0].evidence["covered_fraction"] < 0.5


def test_missing_files_have_a_fingerprint_each(tmp_path: Path) -> None:
    spec = STALE_SPEC.replace("- `src/a.py`", "- `a.py`\n- `b.py`")
    store = make_store(tmp_path, specs={"s.md": spec}, repo={}, tasks=[_impl([], "s.md")])
    try:
        found = list(spec_drift.check(spec_drift.Options(), store.view(NOW)))
    finally:
        store.close()
    prints = {f.with_identity(spec_drift.ID, Severity.warning).fingerprint for f in found}
    assert [f.key for f in found] == ["a.py", "b.py"] and len(prints) == 2


STALE_SPEC = (
    "## Purpose\nx\n## Requirements\n- a\n## Files\n- `src/a.py`\n## Acceptance Tests\n- t\n"
)


def test_stale_spec_baseline_by_commit_sha(tmp_path: Path) -> None:
    commits: list[dict[str, Any]] = [
        {"at": "2026-03-01T00:00:00Z", "specs": {"s.md": STALE_SPEC}, "files": {"src/a.py": "1"}},
        {"at": "2026-03-05T00:00:00Z", "files": {"src/a.py": "2"}},
        {"at": "2026-03-06T00:00:00Z", "files": {"src/other.py": "1"}},
    ]
    tasks = [_impl(["src/a.py"], "s.md")]
    store = make_store(tmp_path, commits=commits, tasks=tasks)
    ws: Workspace = store.workspace
    assert ws.repo_dir is not None
    head = ws._git(ws.repo_dir, "rev-parse", "HEAD")
    first = ws._git(ws.repo_dir, "rev-list", "--max-parents=0", "HEAD")
    assert head and first
    try:
        view = store.view(NOW)
        stale = list(spec_drift.check(spec_drift.Options(), view))
        assert [(f.kind, f.evidence["files"]) for f in stale] == [
            ("stale-spec", {"src/a.py": "2026-03-05T00:00:00Z"})
        ]
        accepted = spec_drift.Options(baselines={"s.md": head[:12]})
        assert list(spec_drift.check(accepted, view)) == []
        too_early = spec_drift.Options(baselines={"s.md": first})
        assert [f.kind for f in spec_drift.check(too_early, view)] == ["stale-spec"]
        unknown = spec_drift.Options(baselines={"s.md": "deadbeefdeadbeef"})
        (finding,) = spec_drift.check(unknown, view)
        assert "deadbeefdeadbeef" in finding.evidence["baseline_error"]
    finally:
        store.close()


def test_last_change_reads_git_as_of_an_instant(tmp_path: Path) -> None:
    specs_dir, repo_dir = tmp_path / "specs", tmp_path / "repo"
    specs_dir.mkdir()
    repo_dir.mkdir()
    git_history(
        tmp_path,
        specs_dir,
        repo_dir,
        [
            {"at": "2026-03-01T00:00:00Z", "files": {"a.py": "1"}, "specs": {"s.md": "x"}},
            {"at": "2026-03-05T00:00:00+02:00", "files": {"a.py": "2"}},
        ],
    )
    ws = Workspace(specs_dir=specs_dir, repo_dir=repo_dir)
    at = datetime(2026, 3, 10, tzinfo=UTC)
    assert ws.last_change("a.py", at) == datetime(2026, 3, 4, 22, tzinfo=UTC)
    assert ws.last_change("a.py", datetime(2026, 3, 4, 21, tzinfo=UTC)) == datetime(
        2026, 3, 1, tzinfo=UTC
    )
    assert ws.last_change("s.md", at, in_specs=True) == datetime(2026, 3, 1, tzinfo=UTC)
    assert ws.last_change("a.py", datetime(2026, 2, 1, tzinfo=UTC)) is None
    assert ws.last_change("../outside.py", at) is None
    # A file git does not track falls back to its mtime.
    (repo_dir / "new.py").write_text("x")
    os.utime(repo_dir / "new.py", (1772668800, 1772668800))  # 2026-03-05T00:00:00Z
    assert ws.last_change("new.py", at) == datetime(2026, 3, 5, tzinfo=UTC)


def test_last_change_without_git_uses_mtime_up_to_the_instant(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x")
    os.utime(tmp_path / "a.py", (1772668800, 1772668800))  # 2026-03-05T00:00:00Z
    ws = Workspace(specs_dir=None, repo_dir=tmp_path)
    assert ws.last_change("a.py", datetime(2026, 3, 10, tzinfo=UTC)) == datetime(
        2026, 3, 5, tzinfo=UTC
    )
    # Before the mtime the history is unknown: no answer rather than a wrong one.
    assert ws.last_change("a.py", datetime(2026, 3, 4, tzinfo=UTC)) is None
    assert ws.commit_time("abcdef0") is None
    assert ws.spec_files(["*.md"]) == []


def test_bad_baseline_names_the_spec_and_what_is_expected() -> None:
    with pytest.raises(ValidationError, match=r"baseline for '004-x.md': 'last week'"):
        spec_drift.Options(baselines={"004-x.md": "last week"})


UNTESTABLE_SPEC = "## Purpose\nx\n## Requirements\n- a\n## Files\n- `src/a.py`\n"


@pytest.mark.parametrize(
    ("written", "completed_task", "judged"),
    [
        (datetime(2026, 3, 9, tzinfo=UTC), False, True),  # mtime before now: it existed
        (datetime(2026, 3, 11, tzinfo=UTC), False, False),  # after now, nothing says it existed
        (datetime(2026, 3, 11, tzinfo=UTC), True, True),  # after now, but a task of it completed
    ],
)
def test_outside_git_a_spec_is_judged_once_it_existed(
    tmp_path: Path, written: datetime, completed_task: bool, judged: bool
) -> None:
    """Outside git the mtime is the last change: after now it cannot prove the spec was absent."""
    tasks = [
        {
            "id": "s1",
            "title": "Write spec",
            "task_type": "spec",
            "status": "completed",
            "spec": "s.md",
            "created_at": "2026-03-01T00:00:00Z",
            "finished_at": "2026-03-02T00:00:00Z",
        }
    ]
    store = make_store(
        tmp_path, specs={"s.md": UNTESTABLE_SPEC}, tasks=tasks if completed_task else []
    )
    os.utime(tmp_path / "specs" / "s.md", (written.timestamp(), written.timestamp()))
    try:
        found = list(spec_drift.check(spec_drift.Options(), store.view(NOW)))
    finally:
        store.close()
    assert [f.kind for f in found] == (["untestable"] if judged else [])


def test_existed_at_uses_the_first_commit(tmp_path: Path) -> None:
    git_history(
        tmp_path,
        tmp_path / "specs",
        tmp_path / "repo",
        [
            {"at": "2026-03-05T00:00:00Z", "specs": {"s.md": "v1"}},
            {"at": "2026-03-08T00:00:00Z", "specs": {"s.md": "v2"}},
        ],
    )
    ws = Workspace(specs_dir=tmp_path / "specs", repo_dir=tmp_path / "repo")
    at = datetime(2026, 3, 5, tzinfo=UTC)
    assert ws.existed_at("s.md", at, in_specs=True) is True
    assert ws.existed_at("s.md", at - timedelta(seconds=1), in_specs=True) is False
