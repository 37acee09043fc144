"""Docs, defaults and the shipped config agree, rule by rule."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from reviewer.docs import options_block, render_config, render_readme
from rules import REGISTRY

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("rule_id", list(REGISTRY))
def test_docstring_options_block_shows_the_real_defaults(rule_id: str) -> None:
    module = REGISTRY[rule_id]
    table: dict[str, Any] = tomllib.loads(options_block(module))["rules"][rule_id]
    documented = module.Options.model_validate(table).model_dump()
    assert documented == module.Options().model_dump(), (
        f"rules/{rule_id}: the docstring's options block must show the defaults"
    )
    injected = {
        name
        for name, field in module.Options.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("injected")
    }
    missing = set(module.Options.model_fields) - set(table) - injected
    assert not missing, f"rules/{rule_id}: options not documented: {sorted(missing)}"


@pytest.mark.parametrize("rule_id", list(REGISTRY))
def test_docstring_says_what_fires_and_what_stays_silent(rule_id: str) -> None:
    doc = REGISTRY[rule_id].__doc__ or ""
    assert doc.splitlines()[0].startswith(f"{rule_id}: ")
    assert "Fires:" in doc and "Silent:" in doc


def test_config_toml_rule_tables_are_generated_from_the_docstrings() -> None:
    text = (ROOT / "config.toml").read_text()
    assert render_config(text) == text, "run: python -m reviewer.docs --config config.toml"


def test_readme_rule_reference_is_generated_from_the_docstrings() -> None:
    text = (ROOT / "README.md").read_text()
    assert render_readme(text) == text, "run: python -m reviewer.docs --write README.md"
