"""The reviewer's domain objects: findings, proposals, silences, runs."""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Severity(StrEnum):
    """How much a finding matters; orders the proposal queue and sets task priority."""

    info = "info"
    warning = "warning"
    error = "error"
    critical = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    @property
    def priority(self) -> str:
        """The backlog priority of a task filed for a finding of this severity."""
        return _SEVERITY_PRIORITY[self]


_SEVERITY_RANK = {Severity.info: 0, Severity.warning: 1, Severity.error: 2, Severity.critical: 3}
_SEVERITY_PRIORITY = {
    Severity.info: "low",
    Severity.warning: "normal",
    Severity.error: "high",
    Severity.critical: "critical",
}


class Approval(StrEnum):
    """What the engine does with a finding's proposal."""

    manual = "manual"  # wait for a human to approve or reject
    auto = "auto"  # schedule the backlog task at once
    off = "off"  # report the finding only


class ProposalState(StrEnum):
    pending = "pending"
    approved = "approved"
    scheduled = "scheduled"
    rejected = "rejected"
    resolved = "resolved"
    superseded = "superseded"


# A proposal in one of these states still speaks for its finding: no second one is made.
ACTIVE_PROPOSAL_STATES = (ProposalState.pending, ProposalState.approved, ProposalState.scheduled)


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
    task_type: str = "review"
    related: list[str] = Field(default_factory=list)
    silenced_by: int | None = None

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


class Proposal(BaseModel):
    """A backlog task the reviewer wants to file, and where it stands."""

    id: int
    fingerprint: str
    rule: str
    kind: str
    subject: str
    severity: Severity
    title: str
    body: str
    state: ProposalState
    approval: Approval
    created_at: str
    updated_at: str
    run_id: int | None = None
    task_id: str | None = None
    decided_by: str | None = None
    reason: str | None = None
    regression_of: int | None = None

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Silence(BaseModel):
    """A rule/subject pattern whose findings propose nothing until a time."""

    id: int
    rule: str
    subject: str
    until: str
    created_by: str
    comment: str
    created_at: str
    expired_at: str | None = None

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ReviewRun(BaseModel):
    """One review cycle: when, as of when, what it found, what failed."""

    id: int
    started_at: str
    now: str
    finished_at: str | None = None
    status: str
    trigger: str
    findings: int = 0
    new_proposals: int = 0
    held_back: int = 0
    resolved: int = 0
    duration_ms: int | None = None
    errors: list[dict[str, Any]] = Field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
