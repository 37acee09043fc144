"""Rendering proposals into backlog task text, with sandboxed jinja2 templates.

Templates are looked up most specific first: ``<rule>/<kind>.md.j2``,
``<rule>.md.j2``, then ``proposal.md.j2``; the title from ``<rule>/title.j2``
or ``title.j2``. A user's ``templates_dir`` is searched before the built-in
ones, so overriding one file is enough. The sandbox keeps a user template
from reaching into Python objects.
"""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from rules import REGISTRY, Finding
from store import Proposal, Severity
from store.timeutil import fmt_ts

_MAX_EVIDENCE_CHARS = 400


def shell_words(*words: object) -> str:
    """A command for a person to paste: every word quoted with ``shlex.quote``.

    The one place printed commands are built; templates reach it as the
    ``shquote`` filter. Pipeline text (a task id, a model name) is data, and a
    hostile id like ``evil'; touch PWNED; echo '`` stays one harmless word.
    """
    return " ".join(shlex.quote(str(w)) for w in words)


class TemplateError(Exception):
    """A template is missing or broken; the message names it and the line."""


def _evidence(value: Any) -> str:
    """One evidence value, compact and bounded, for Markdown."""
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, list | dict):
        text = json.dumps(value, default=str, ensure_ascii=False)
    else:
        text = str(value)
    if len(text) > _MAX_EVIDENCE_CHARS:
        text = text[: _MAX_EVIDENCE_CHARS - 1] + "…"
    return text


class Renderer:
    """Turns a finding into a proposal title and body."""

    def __init__(self, templates_dir: Path | None = None):
        loaders: list[jinja2.BaseLoader] = []
        if templates_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(templates_dir)))
        loaders.append(jinja2.PackageLoader("reviewer", "templates"))
        self.templates_dir = templates_dir
        self.env = SandboxedEnvironment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=False,  # Markdown for a backlog, not HTML
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
        )
        self.env.filters["evidence"] = _evidence
        self.env.filters["shquote"] = shell_words

    def _template(self, names: list[str]) -> jinja2.Template:
        try:
            return self.env.select_template(names)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template {exc.filename or exc.name}:{exc.lineno}: {exc.message}"
            ) from None
        except jinja2.TemplatesNotFound:
            raise TemplateError(f"none of the templates {', '.join(names)} exists") from None

    def render(
        self,
        finding: Finding,
        *,
        now: datetime,
        run_id: int | None = None,
        regression: Proposal | None = None,
        regression_note: str = "",
    ) -> tuple[str, str]:
        """The (title, body) of the backlog task proposed for ``finding``."""
        context = {
            "finding": finding.model_dump(mode="json"),
            "run_id": run_id,
            "now": fmt_ts(now),
            "silence_until": fmt_ts(now + timedelta(days=30)),
            "regression": regression.model_dump(mode="json") if regression else None,
            "regression_note": regression_note,
        }
        rule, kind = finding.rule, finding.kind
        body_t = self._template([f"{rule}/{kind}.md.j2", f"{rule}.md.j2", "proposal.md.j2"])
        title_t = self._template([f"{rule}/title.j2", "title.j2"])
        try:
            body = body_t.render(context)
            title = " ".join(title_t.render(context).split())
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {body_t.name} or {title_t.name}: {exc}") from None
        if regression is not None and not title.startswith("Regressed"):
            title = f"Regressed: {title}"
        return title[:200], body.strip() + "\n"

    def check(self) -> list[str]:
        """Compile every template and render a sample of each rule; return the problems."""

        problems = []
        for name in self.env.list_templates(filter_func=lambda n: n.endswith(".j2")):
            try:
                self.env.get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                problems.append(f"template {exc.filename or name}:{exc.lineno}: {exc.message}")
        if problems:
            return problems
        for rule_id in REGISTRY:
            sample = Finding(
                kind="example", subject="example", summary="example", evidence={"example": 1}
            ).with_identity(rule_id, Severity.warning)
            try:
                self.render(sample, now=datetime(2026, 1, 1, tzinfo=UTC))
            except TemplateError as exc:
                problems.append(f"{exc} (rendering a {rule_id} proposal)")
        return problems
