"""The contract every rule module keeps.

A rule module declares:

``ID``
    a stable kebab-case identifier, used in config (``[rules.<ID>]``), in
    findings and in silences;
``Options``
    a pydantic model (subclass of ``RuleOptions``) of its options, each with
    a default; cross-field checks go in a validator;
``check(options, view)``
    a pure function that reads the store through ``view`` (a read-only
    ``BacklogView`` as of ``view.now``) and yields ``Finding`` objects. It does
    no I/O of its own, never reads the clock and writes nothing: the engine
    owns time, persistence, dedup and scheduling.

and may declare ``DEFAULTS``, the rule's own defaults for the shared keys
(``enabled``, ``severity``, ``approval``). The module docstring is the user's
documentation of the rule; the README's rule reference is checked against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from store import BacklogView, ControlKind, ControlSpec, Severity
from store.finite import finite, finite_text


def fingerprint(rule: str, kind: str, subject: str, key: str | None = None) -> str:
    """The stable identity of a finding: same rule, kind, subject (and key) → same print."""
    raw = "\x1f".join([rule, kind, subject, key or ""])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


class Finding(BaseModel):
    """One problem a rule saw, with the evidence for it.

    Rules fill ``kind``, ``subject``, ``summary`` and ``evidence`` (and may set
    the rest); the engine fills ``rule``, ``severity`` (from config unless the
    rule escalated it) and ``fingerprint``.
    """

    model_config = ConfigDict(extra="forbid")

    rule: str = ""
    kind: str
    subject: str
    summary: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    severity: Severity | None = None
    fingerprint: str = ""
    # Extra discriminator for the fingerprint, when one subject can have several
    # findings of one kind (e.g. a spec with two missing files).
    key: str | None = None
    # What the proposed task should be called and say; templates fall back to
    # generic text when a rule leaves them empty.
    title: str = ""
    why: str = ""
    action: str = ""
    # `alert`, `throttle`, `pause`, `quarantine`, `escalate`, ... (rule-specific)
    remedy: str = "alert"
    # What the pipeline should obey once the proposal is approved (pause an executor,
    # hold a task type, throttle a scope, quarantine a test); None: a task only.
    control: ControlSpec | None = None
    task_type: str = "review"
    related: list[str] = Field(default_factory=list)
    silenced_by: int | None = None

    @model_validator(mode="after")
    def _finite(self) -> Finding:
        """No finding says inf or NaN: a figure that is not finite reads n/a (its
        evidence value null), whatever a direct SQL writer put in the store."""
        for name in ("summary", "title", "why", "action"):
            text = getattr(self, name)
            cleaned = finite_text(text)
            if cleaned != text:
                object.__setattr__(self, name, cleaned)
        evidence = finite(self.evidence)
        if evidence != self.evidence:
            object.__setattr__(self, "evidence", evidence)
        return self

    def with_identity(self, rule: str, default_severity: Severity) -> Finding:
        return self.model_copy(
            update={
                "rule": rule,
                "severity": self.severity or default_severity,
                "fingerprint": fingerprint(rule, self.kind, self.subject, self.key),
            }
        )

    def public(self) -> dict[str, Any]:
        """The JSON form of CONTRACT (``review --json`` and the API)."""
        data = self.model_dump(mode="json", exclude={"key"})
        return data


class RuleOptions(BaseModel):
    """Base of every rule's options: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class RuleModule(Protocol):
    """What the engine needs of a rule module."""

    ID: str
    Options: type[RuleOptions]
    DEFAULTS: dict[str, Any]
    __doc__: str | None

    def check(self, options: Any, view: BacklogView) -> Iterable[Finding]: ...


__all__ = [
    "ControlKind",
    "ControlSpec",
    "Finding",
    "RuleModule",
    "RuleOptions",
    "Severity",
    "fingerprint",
]
