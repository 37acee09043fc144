"""Command start-up stays light: no command that only reads loads the heavy libraries.

Every command loads the config, and the config imports every rule module for its
``Options``; a rule that imports scipy at the top of its module would add half a
second and 80 MB to ``reviewer proposals list``. These tests run the real command
in a fresh interpreter and look at what it imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Run ``python -m reviewer ARGS`` and, at exit, write the loaded module names to a file.
_WRAPPER = """
import atexit, json, runpy, sys
out = sys.argv[1]
sys.argv = ["reviewer", *sys.argv[2:]]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
runpy.run_module("reviewer", run_name="__main__", alter_sys=True)
"""

HEAVY = ("scipy", "numpy", "pandas", "fastapi", "uvicorn", "psycopg", "sqlite_utils")


def _loaded(tmp_path: Path, *args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    (tmp_path / "config.toml").write_text(
        f'[reviewer]\nstore = "sqlite:///{tmp_path / "fresh.db"}"\n', encoding="utf-8"
    )
    # Reading commands never create a store (they say there is none): make an empty one.
    from store import open_store

    made = open_store(f"sqlite:///{tmp_path / 'fresh.db'}")
    made.migrate()
    made.close()
    out = tmp_path / "modules.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REVIEWER_CONFIG": str(tmp_path / "config.toml")}
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(out), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return {m.split(".")[0] for m in json.loads(out.read_text())}, proc


@pytest.mark.parametrize(
    "args",
    [
        ("proposals", "list", "--json"),
        ("findings", "list", "--json"),
        ("runs", "list", "--json"),
        ("review", "--help"),
        ("config", "check"),
    ],
    ids=lambda a: " ".join(a),
)
def test_reading_commands_load_no_heavy_library(tmp_path: Path, args: tuple[str, ...]) -> None:
    modules, proc = _loaded(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    # The command really ran against the store and the rules (not just printed usage).
    if args[-1] == "--json":
        assert json.loads(proc.stdout) == []
        assert {"rules", "store", "pydantic"} <= modules
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))


def test_the_check_sees_a_heavy_import(tmp_path: Path) -> None:
    # The wrapper is not blind: a command that computes statistics loads scipy.
    modules, proc = _loaded(tmp_path, "review", "--once", "--dry-run")
    assert proc.returncode in (0, 1), proc.stderr
    assert "scipy" in modules


def test_a_template_error_is_still_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    # handled() no longer imports reviewer.render up front (so jinja2 stays unloaded);
    # a template error raised inside a command is still one line and exit 1.
    from reviewer.cli.base import handled
    from reviewer.render import TemplateError

    with pytest.raises(SystemExit) as exited, handled():
        raise TemplateError("template proposal.md.j2:1: unexpected '}'")
    assert exited.value.code == 1
    assert capsys.readouterr().err == "reviewer: template proposal.md.j2:1: unexpected '}'\n"
    with pytest.raises(KeyError), handled():  # what it does not know still propagates
        raise KeyError("x")
