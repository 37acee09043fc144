"""How the review page renders: the jinja2 environment, safe Markdown, evidence tables.

Autoescape is on for every ``.html`` template. Task bodies are Markdown from
rules whose text quotes the pipeline, so they go through markdown-it with raw
HTML off (a ``<script>`` in a task title comes out as text) and its default
link check (no ``javascript:`` links).
"""

from __future__ import annotations

import json
from typing import Any

import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup

_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")

SEVERITIES = ("critical", "error", "warning", "info")
PROPOSAL_STATES = ("pending", "approved", "scheduled", "rejected", "resolved", "superseded")


def render_markdown(text: str) -> Markup:
    """Markdown as HTML with every raw HTML tag escaped."""
    # Safe to mark: with html=False markdown-it escapes every tag in the source.
    return Markup(_markdown.render(text or ""))


def evidence_rows(payload: str | None) -> list[tuple[str, str]]:
    """A finding's evidence as (label, text) rows; nested values as compact JSON."""
    try:
        evidence = json.loads(payload or "{}").get("evidence") or {}
    except (ValueError, AttributeError):
        return []
    rows = []
    for key, value in evidence.items():
        if value is None or value == [] or value == {}:
            continue
        if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
            text = ", ".join(str(v) for v in value)
        elif isinstance(value, dict | list):
            text = json.dumps(value, sort_keys=True, default=str)
        elif isinstance(value, float):
            text = f"{value:.4g}"
        else:
            text = str(value)
        rows.append((str(key).replace("_", " "), text))
    return rows


def _details(value: str | None) -> str:
    if not value:
        return ""
    try:
        data = json.loads(value)
    except ValueError:
        return value
    if isinstance(data, dict):
        return ", ".join(f"{k}: {v}" for k, v in data.items() if v is not None)
    return str(data)


pages = jinja2.Environment(
    loader=jinja2.PackageLoader("reviewer", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
)
pages.filters["markdown"] = render_markdown
pages.filters["details"] = _details


def render(template: str, **context: Any) -> str:
    return pages.get_template(f"web/{template}").render(
        severities=SEVERITIES, proposal_states=PROPOSAL_STATES, **context
    )
