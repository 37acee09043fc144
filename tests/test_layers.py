"""The three floors (store <- rules <- reviewer) hold: `lint-imports` passes on the
tree and fails on a copy in which a rule imports the app."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = shutil.which("lint-imports")

pytestmark = pytest.mark.skipif(LINT is None, reason="import-linter is not installed")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _copy(tmp_path: Path) -> Path:
    for name in ("reviewer", "rules", "store"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_floors_hold(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_rule_importing_the_app_breaks_the_floors(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    rule = next(p for p in sorted((root / "rules").rglob("*.py")) if "stale_queue" in str(p))
    rule.write_text(rule.read_text() + "\nimport reviewer.engine  # noqa\n")
    result = _lint(root)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "rules" in result.stdout and "reviewer.engine" in result.stdout


def test_a_private_store_import_breaks_the_contract(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    engine = root / "reviewer" / "engine.py"
    engine.write_text(engine.read_text() + "\nfrom store._view import BacklogView  # noqa\n")
    result = _lint(root)
    assert result.returncode != 0
    assert "store._view" in result.stdout
