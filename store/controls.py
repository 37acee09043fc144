"""Controls: decisions the pipeline's runner obeys before it starts work.

A control pauses an executor (or a model), holds a task type, throttles a
scope to so many tasks an hour and/or dollars a day, or quarantines a test.
It lives in the pipeline-facing table ``controls`` (CONTRACT, "Controls"), is
active while ``lifted_at`` is NULL and ``expires_at`` is after now, and every
apply and lift writes its audit entry (``control.applied``,
``control.lifted``) in the same transaction. ``ControlsState`` is the part of
``ReviewerState`` that reads and writes the table.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from store.base import Row, Store
from store.models import NotFound


class ControlKind(StrEnum):
    """What a control does to the work its target names."""

    pause = "pause"  # start nothing on this executor (or model)
    hold = "hold"  # start no task of this type
    throttle = "throttle"  # start at most N an hour and/or spend at most $D a day
    quarantine = "quarantine"  # run this test, but its failure does not fail the build


# The scopes (the part of the target before ':') each kind may name; "all" is every task.
CONTROL_TARGETS: dict[ControlKind, tuple[str, ...]] = {
    ControlKind.pause: ("executor", "model"),
    ControlKind.hold: ("task_type",),
    ControlKind.throttle: ("model", "executor", "task_type", "all"),
    ControlKind.quarantine: ("test",),
}


class ControlSpec(BaseModel):
    """The control a finding asks for: kind, target and, for a throttle, its limits.

    A rule sets it on a ``Finding`` (``control=``); the engine applies it when the
    finding's proposal is approved (or at once under ``approval = "auto"``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ControlKind
    target: str
    tasks_per_hour: int | None = Field(default=None, ge=1)
    usd_per_day: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _fits_kind(self) -> ControlSpec:
        scope, sep, name = self.target.partition(":")
        allowed = CONTROL_TARGETS[self.kind]
        if not ((scope == "all" and not sep) or (scope in allowed and scope != "all" and name)):
            forms = ", ".join("all" if s == "all" else f"{s}:NAME" for s in allowed)
            raise ValueError(f"a {self.kind.value} control targets {forms}; got {self.target!r}")
        limited = self.tasks_per_hour is not None or self.usd_per_day is not None
        if self.kind == ControlKind.throttle and not limited:
            raise ValueError("a throttle needs tasks_per_hour, usd_per_day or both")
        if self.kind != ControlKind.throttle and limited:
            raise ValueError(f"only a throttle has limits, not a {self.kind.value} control")
        return self


class Control(BaseModel):
    """One control as stored, active or not."""

    id: int
    kind: ControlKind
    target: str
    tasks_per_hour: int | None = None
    usd_per_day: float | None = None
    reason: str
    fingerprint: str | None = None
    rule: str | None = None
    proposal_id: int | None = None
    created_by: str
    created_at: str
    expires_at: str
    lifted_at: str | None = None
    lifted_by: str | None = None
    lift_reason: str | None = None
    clear_cycles: int = 0

    def status(self, at: str) -> str:
        """``active``, ``lifted``, or ``expired`` (past its expiry, lift not yet recorded)."""
        if self.lifted_at is not None:
            return "lifted"
        return "active" if self.expires_at > at else "expired"

    def public(self, at: str) -> dict[str, Any]:
        """The JSON form (``controls list --json``, ``GET /api/controls``) as of ``at``."""
        return {**self.model_dump(mode="json"), "status": self.status(at)}


def _control(row: Row) -> Control:
    return Control.model_validate(row)


class ControlsState:
    """Reads and writes of the ``controls`` table (mixed into ``ReviewerState``)."""

    store: Store
    audit: Callable[..., None]

    def control(self, control_id: int) -> Control:
        rows = self.store.query("SELECT * FROM controls WHERE id = :id", {"id": control_id})
        if not rows:
            raise NotFound(f"no control with id {control_id}")
        return _control(rows[0])

    def controls(self, at: str, *, include_lifted: bool = False, limit: int = 500) -> list[Control]:
        """Controls active at ``at``, newest first (every control with ``include_lifted``)."""
        where = "" if include_lifted else "WHERE lifted_at IS NULL AND expires_at > :at"
        rows = self.store.query(
            f"SELECT * FROM controls {where} ORDER BY id DESC LIMIT :n", {"at": at, "n": limit}
        )
        return [_control(r) for r in rows]

    def active_control_counts(self, at: str) -> dict[str, int]:
        """Controls active at ``at``, by kind."""
        rows = self.store.query(
            """SELECT kind, COUNT(*) AS n FROM controls
               WHERE lifted_at IS NULL AND expires_at > :at GROUP BY kind""",
            {"at": at},
        )
        return {r["kind"]: int(r["n"]) for r in rows}

    def unlifted_controls(self) -> list[Control]:
        """Controls whose lift is not recorded yet (active, or expired since the last cycle)."""
        rows = self.store.query("SELECT * FROM controls WHERE lifted_at IS NULL ORDER BY id")
        return [_control(r) for r in rows]

    def apply_control(
        self,
        spec: ControlSpec,
        *,
        reason: str,
        by: str,
        at: str,
        expires_at: str,
        fingerprint: str | None = None,
        rule: str | None = None,
        proposal_id: int | None = None,
        why: str | None = None,
    ) -> tuple[Control, bool]:
        """Apply a control; audited as ``control.applied`` (``why``: the decision's reason).

        A finding whose same control is already in force keeps that one: returns
        it and ``False``; a new control returns ``True``.
        """
        if fingerprint is not None:
            rows = self.store.query(
                """SELECT * FROM controls WHERE fingerprint = :fp AND kind = :kind
                     AND target = :target AND lifted_at IS NULL AND expires_at > :at
                   ORDER BY id LIMIT 1""",
                {"fp": fingerprint, "kind": spec.kind.value, "target": spec.target, "at": at},
            )
            if rows:
                return _control(rows[0]), False
        rows = self.store.query(
            """INSERT INTO controls (kind, target, tasks_per_hour, usd_per_day, reason,
                   fingerprint, rule, proposal_id, created_by, created_at, expires_at)
               VALUES (:kind, :target, :tph, :usd, :reason, :fp, :rule, :proposal_id, :by,
                   :at, :expires_at)
               RETURNING *""",
            {
                "kind": spec.kind.value,
                "target": spec.target,
                "tph": spec.tasks_per_hour,
                "usd": spec.usd_per_day,
                "reason": reason,
                "fp": fingerprint,
                "rule": rule,
                "proposal_id": proposal_id,
                "by": by,
                "at": at,
                "expires_at": expires_at,
            },
        )
        control = _control(rows[0])
        self._audit_control(control, "control.applied", at, by, why or reason)
        return control, True

    def lift_control(
        self, control_id: int, *, by: str, at: str, reason: str
    ) -> tuple[Control, bool]:
        """Lift a control now; audited as ``control.lifted``.

        Lifting one already lifted changes nothing: returns it and ``False``.
        """
        current = self.control(control_id)
        if current.lifted_at is not None:
            return current, False
        rows = self.store.query(
            """UPDATE controls SET lifted_at = :at, lifted_by = :by, lift_reason = :reason
               WHERE id = :id AND lifted_at IS NULL RETURNING *""",
            {"at": at, "by": by, "reason": reason, "id": control_id},
        )
        if not rows:  # lifted by another writer meanwhile
            return self.control(control_id), False
        control = _control(rows[0])
        self._audit_control(control, "control.lifted", at, by, reason)
        return control, True

    def set_control_clear_cycles(self, control_id: int, cycles: int) -> None:
        """How many cycles in a row the control's finding has not fired."""
        self.store.execute(
            "UPDATE controls SET clear_cycles = :n WHERE id = :id", {"n": cycles, "id": control_id}
        )

    def _audit_control(self, control: Control, action: str, at: str, by: str, why: str) -> None:
        details: dict[str, Any] = {
            "control_id": control.id,
            "kind": control.kind.value,
            "target": control.target,
            "expires_at": control.expires_at,
        }
        for limit in ("tasks_per_hour", "usd_per_day"):
            if getattr(control, limit) is not None:
                details[limit] = getattr(control, limit)
        self.audit(
            at,
            by,
            action,
            fingerprint=control.fingerprint,
            rule=control.rule,
            subject=control.target,
            from_state="active" if action == "control.lifted" else None,
            to_state="lifted" if action == "control.lifted" else "active",
            reason=why,
            details=details,
            proposal_id=control.proposal_id,
        )


__all__ = ["CONTROL_TARGETS", "Control", "ControlKind", "ControlSpec", "ControlsState"]
