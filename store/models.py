"""The reviewer's own records: severities, proposals, silences, runs (kept by store.state)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


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


class Outcome(StrEnum):
    """What became of a scheduled proposal once its backlog task ended."""

    fixed = "fixed"  # the finding cleared soon after and stayed clear
    not_fixed = "not-fixed"  # the finding persisted after the task completed
    regressed = "regressed"  # a fixed finding came back
    abandoned = "abandoned"  # the task was cancelled or failed


# A proposal in one of these states still speaks for its finding: no second one is made.
ACTIVE_PROPOSAL_STATES = (ProposalState.pending, ProposalState.approved, ProposalState.scheduled)


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
    # Once its backlog task ended: how (completed|cancelled|failed), when, and the outcome.
    task_status: str | None = None
    task_ended_at: str | None = None
    outcome: Outcome | None = None
    outcome_at: str | None = None

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
    # Pipeline records dated after the present when the run ran (a wrong clock upstream).
    future_records: int = 0
    # A scheduled cycle of replicas on PostgreSQL: its scheduled instant and who ran it.
    tick: str | None = None
    runner: str | None = None
    # Pipeline rows the run skipped: a timestamp or number that does not parse.
    skipped_records: int = 0

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class NotFound(LookupError):
    """No such proposal, run or silence."""


class InvalidTransition(ValueError):
    """A proposal cannot move from its state to the one asked for."""


# The audit actor of every change the reviewer makes on its own.
REVIEWER_ACTOR = "reviewer"
