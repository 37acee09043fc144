"""Helpers shared by the tests: stores, records, configs."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from reviewer.config import Config, config_from_dict
from store import Store, open_store
from store.records import MetricRecord, TaskRecord
from store.sqlite import SQLiteStore
from store.timeutil import fmt_ts, parse_duration, parse_ts
from store.workspace import Workspace


def task_rows(tasks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for t in tasks:
        row = TaskRecord.model_validate(t).row()
        if not row["created_at"]:
            raise ValueError(f"test task {t.get('id')} needs a created_at")
        rows.append(row)
    return rows


def metric_rows(metrics: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [MetricRecord.model_validate(m).row() for m in metrics]


def test_result_rows(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        row = dict(r)
        if "test_id" not in row:
            row["test_id"] = f"{row.get('classname', '')}::{row.get('name', '')}"
        row.setdefault("classname", row["test_id"].split("::")[0])
        row.setdefault("name", row["test_id"].split("::")[-1])
        row["ran_at"] = fmt_ts(parse_ts(row["ran_at"]))
        rows.append(row)
    return rows


def coverage_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Coverage rows with defaults: no branch data, recorded_at in the stored form."""
    out = []
    for r in rows:
        row = {"branch": None, "branches_valid": 0, "branches_covered": 0, **r}
        row["recorded_at"] = fmt_ts(parse_ts(row["recorded_at"]))
        out.append(row)
    return out


def expand_series(series: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Generate many records from a compact description (see tests/cases/README.md)."""
    out: dict[str, list[dict[str, Any]]] = {
        "tasks": [],
        "metrics": [],
        "test_results": [],
        "coverage": [],
    }
    for s in series:
        start = parse_ts(s["start"])
        step = parse_duration(s.get("step", "1h"))
        values: dict[str, list[Any]] = s.get("values", {})
        for i in range(int(s["count"])):
            at = start + step * i
            rec: dict[str, Any] = {}
            for key, val in s["template"].items():
                rec[key] = val.format(i=i, at=fmt_ts(at)) if isinstance(val, str) else val
            for key, seq in values.items():
                rec[key] = seq[i % len(seq)]
            rec.setdefault(s.get("time_field", "created_at"), fmt_ts(at))
            out[s["table"]].append(rec)
    return out


def make_store(
    tmp_path: Path | None = None,
    *,
    tasks: Iterable[dict[str, Any]] = (),
    metrics: Iterable[dict[str, Any]] = (),
    test_results: Iterable[dict[str, Any]] = (),
    coverage: Iterable[dict[str, Any]] = (),
    specs: dict[str, str] | None = None,
    repo: dict[str, str] | None = None,
    commits: list[dict[str, Any]] | None = None,
    path: str = ":memory:",
    url: str | None = None,
) -> Store:
    """A store holding the given records, with a workspace of the given files.

    The store is an in-memory SQLite one unless ``url`` names another.

    ``commits`` (``[{at, files, specs}]``) also makes ``tmp_path`` a git repository
    holding both directories, with one commit per entry dated ``at``.
    """
    workspace = None
    if tmp_path is not None and (specs is not None or repo is not None or commits):
        specs_dir = tmp_path / "specs"
        repo_dir = tmp_path / "repo"
        for base, files in ((specs_dir, specs or {}), (repo_dir, repo or {})):
            base.mkdir(parents=True, exist_ok=True)
            for rel, text in files.items():
                target = base / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        if commits:
            git_history(tmp_path, specs_dir, repo_dir, commits)
        workspace = Workspace(specs_dir=specs_dir, repo_dir=repo_dir)
    store: Store = (
        open_store(url, workspace=workspace) if url else SQLiteStore(path, workspace=workspace)
    )
    store.upsert_tasks(task_rows(tasks))
    store.upsert_metrics(metric_rows(metrics))
    store.upsert_test_results(test_result_rows(test_results))
    store.upsert_coverage(coverage_rows(coverage))
    return store


def git_history(root: Path, specs_dir: Path, repo_dir: Path, commits: list[dict[str, Any]]) -> None:
    """Make ``root`` a git repository with one commit per entry, dated ``at``.

    Each entry writes ``files`` under ``repo_dir`` and ``specs`` under ``specs_dir``
    (content ``None`` deletes the file) and commits everything.
    """

    def git(*args: str, at: str | None = None) -> None:
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(root)}
        if at is not None:
            env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = at
        subprocess.run(["git", "-C", str(root), *args], env=env, check=True, capture_output=True)

    git("init", "-q")
    for n, commit in enumerate(commits):
        for base, files in (
            (repo_dir, commit.get("files", {})),
            (specs_dir, commit.get("specs", {})),
        ):
            for rel, text in files.items():
                target = base / rel
                if text is None:
                    target.unlink()
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        git("add", "-A")
        at = fmt_ts(parse_ts(commit["at"]))
        git(
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            f"commit {n}",
            at=at,
        )


def make_config(data: dict[str, Any] | None = None, base: Path | None = None) -> Config:
    cfg = config_from_dict(data or {}, None)
    if base is not None:
        cfg.base_dir = base
    return cfg


def ts(value: str, **delta: float) -> str:
    return fmt_ts(parse_ts(value) + timedelta(**delta))


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
