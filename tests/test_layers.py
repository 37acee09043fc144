"""The three floors (store <- rules <- reviewer) hold: `lint-imports` passes on the
tree and fails on a copy in which a rule imports the app; and nothing imports
another package's ``_private`` modules."""

from __future__ import annotations

import ast
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
        [
            sys.executable,
            "-c",
            # reviewer/ has no __init__.py: an editable install of another checkout
            # would join the namespace package, so its finder and path hook go.
            "import sys; sys.meta_path[:] = [f for f in sys.meta_path"
            " if '__editable__' not in getattr(f, '__module__', '')];"
            "sys.path[:] = [p for p in sys.path if not p.startswith('__editable__')];"
            "from importlinter.cli import lint_imports_command as c; c()",
            "--no-cache",
        ],
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


def test_a_deferred_import_cycle_breaks_the_acyclic_contract(tmp_path: Path) -> None:
    """config -> experiments -> config was a cycle hidden in a function; it now fails CI."""
    root = _copy(tmp_path)
    config = root / "reviewer" / "config.py"
    config.write_text(
        config.read_text()
        + "\n\ndef _later() -> None:\n"
        + "    from reviewer.experiments import experiment_settings  # noqa\n"
    )
    result = _lint(root)
    assert result.returncode != 0
    assert "No import cycles between sibling modules" in result.stdout
    assert ".experiments -> .config" in result.stdout or ".config -> .experiments" in result.stdout


def private_imports(importer: str, source: str) -> list[str]:
    """Imports in ``source`` (of module ``importer``) of a ``_private`` module from outside
    the package that holds it: ``store._view`` may be imported in ``store`` only,
    ``rules.x._y`` in ``rules.x`` only."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        hits = []
        for name in names:
            parts = name.split(".")
            for i, part in enumerate(parts):
                if part.startswith("_") and not part.startswith("__"):
                    owner = ".".join(parts[:i])
                    if not (importer == owner or importer.startswith(owner + ".")):
                        hits.append(f"{importer} imports {'.'.join(parts[: i + 1])}")
                    break
        found += hits[:1]
    return found


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_nothing_imports_another_packages_private_modules() -> None:
    found = []
    for top in ("reviewer", "rules", "store", "tests", "bench"):
        for path in sorted((ROOT / top).rglob("*.py")):
            found += private_imports(_module_name(path), path.read_text())
    assert found == []


def test_the_private_import_check_sees_one() -> None:
    assert private_imports("reviewer.engine", "from store._view import BacklogView") == [
        "reviewer.engine imports store._view"
    ]
    assert private_imports("reviewer.engine", "from store import _view") == [
        "reviewer.engine imports store._view"
    ]
    assert private_imports("store.sqlite", "from store._view import BacklogView") == []
    assert private_imports("rules.a.b", "from rules.a._c import x") == []
    assert private_imports("rules.b", "from rules.a._c import x") == ["rules.b imports rules.a._c"]
