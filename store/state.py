"""The reviewer's own tables: runs, findings, proposals, silences, audit log.

Written once in portable SQL against any ``Store``. Every state change of a
proposal or a silence goes through here, and each one writes its audit entry
in the same transaction as the change.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from store.base import Row, Store
from store.models import (
    ACTIVE_PROPOSAL_STATES,
    Approval,
    Proposal,
    ProposalState,
    ReviewRun,
    Severity,
    Silence,
)

_ACTIVE = "(" + ", ".join(f"'{s.value}'" for s in ACTIVE_PROPOSAL_STATES) + ")"


class NotFound(LookupError):
    """No such proposal, run or silence."""


class InvalidTransition(ValueError):
    """A proposal cannot move from its state to the one asked for."""


def _proposal(row: Row) -> Proposal:
    return Proposal.model_validate({k: row[k] for k in Proposal.model_fields if k in row})


def _silence(row: Row) -> Silence:
    return Silence.model_validate(row)


def _run(row: Row) -> ReviewRun:
    data = dict(row)
    data["errors"] = json.loads(row["errors"] or "[]")
    return ReviewRun.model_validate(data)


class ReviewerState:
    """Reads and writes of the ``reviewer_*`` tables."""

    def __init__(self, store: Store):
        self.store = store

    # -- audit ----------------------------------------------------------------
    def audit(
        self,
        at: str,
        actor: str,
        action: str,
        *,
        proposal: Proposal | None = None,
        fingerprint: str | None = None,
        rule: str | None = None,
        subject: str | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.store.execute(
            """INSERT INTO reviewer_audit (at, actor, action, proposal_id, fingerprint, rule,
                   subject, from_state, to_state, reason, details)
               VALUES (:at, :actor, :action, :proposal_id, :fingerprint, :rule, :subject,
                   :from_state, :to_state, :reason, :details)""",
            {
                "at": at,
                "actor": actor,
                "action": action,
                "proposal_id": proposal.id if proposal else None,
                "fingerprint": fingerprint or (proposal.fingerprint if proposal else None),
                "rule": rule or (proposal.rule if proposal else None),
                "subject": subject or (proposal.subject if proposal else None),
                "from_state": from_state,
                "to_state": to_state,
                "reason": reason,
                "details": json.dumps(details) if details else None,
            },
        )

    def audit_log(self, proposal_id: int | None = None, limit: int = 200) -> list[Row]:
        if proposal_id is not None:
            return self.store.query(
                "SELECT * FROM reviewer_audit WHERE proposal_id = :p ORDER BY id",
                {"p": proposal_id},
            )
        return self.store.query(
            "SELECT * FROM reviewer_audit ORDER BY id DESC LIMIT :n", {"n": limit}
        )

    # -- runs -------------------------------------------------------------------
    def start_run(self, started_at: str, now: str, trigger: str) -> int:
        rows = self.store.query(
            """INSERT INTO reviewer_runs (started_at, now, status, trigger)
               VALUES (:s, :n, 'running', :t) RETURNING id""",
            {"s": started_at, "n": now, "t": trigger},
        )
        return int(rows[0]["id"])

    def finish_run(self, run_id: int, **fields: Any) -> None:
        if "errors" in fields:
            fields["errors"] = json.dumps(fields["errors"])
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        self.store.execute(
            f"UPDATE reviewer_runs SET {sets} WHERE id = :id", {**fields, "id": run_id}
        )

    def count_after(self, after: str) -> int:
        """How many pipeline records carry a timestamp later than ``after``."""
        from store._schema import TIMESTAMP_COLUMNS

        tables = {**TIMESTAMP_COLUMNS, "coverage": ("recorded_at",)}
        parts = [
            f"(SELECT COUNT(*) FROM {table} WHERE "
            + " OR ".join(f"{c} > :after" for c in cols)
            + ")"
            for table, cols in tables.items()
        ]
        rows = self.store.query(f"SELECT {' + '.join(parts)} AS n", {"after": after})
        return int(rows[0]["n"] or 0) if rows else 0

    def count_unreadable(self) -> int:
        """How many pipeline rows the rules skip (a timestamp or number that does not
        parse, written by direct SQL; see ``store._valid``)."""
        from store._dialect import SQLITE
        from store._valid import count_unreadable_sql

        dialect = getattr(self.store, "dialect", SQLITE)
        rows = self.store.query(count_unreadable_sql(dialect))
        return int(rows[0]["n"] or 0) if rows else 0

    def count_running(self) -> int:
        """How many runs are recorded as ``running`` (under way, or left by a kill)."""
        rows = self.store.query("SELECT COUNT(*) AS n FROM reviewer_runs WHERE status = 'running'")
        return int(rows[0]["n"] or 0) if rows else 0

    def mark_interrupted(self) -> int:
        """Mark runs left ``running`` by a killed process ``interrupted``; how many.

        Called by a daemon once it holds the store's daemon lock, so no run of
        this store can be under way in another process's daemon."""
        rows = self.store.query(
            "UPDATE reviewer_runs SET status = 'interrupted' WHERE status = 'running' RETURNING id"
        )
        return len(rows)

    def latest_now(self) -> str | None:
        """The latest instant any recorded review looked at (``now``), if any."""
        rows = self.store.query("SELECT MAX(now) AS now FROM reviewer_runs")
        return rows[0]["now"] if rows else None

    def runs(self, limit: int = 20) -> list[ReviewRun]:
        rows = self.store.query(
            "SELECT * FROM reviewer_runs ORDER BY id DESC LIMIT :n", {"n": limit}
        )
        return [_run(r) for r in rows]

    def last_run(self, *, completed: bool = True) -> ReviewRun | None:
        cond = "WHERE status != 'running'" if completed else ""
        rows = self.store.query(f"SELECT * FROM reviewer_runs {cond} ORDER BY id DESC LIMIT 1")
        return _run(rows[0]) if rows else None

    # -- findings ---------------------------------------------------------------
    def open_findings(self, rules: list[str] | None = None) -> dict[str, Row]:
        """Open findings by fingerprint (optionally of some rules only)."""
        rows = self.store.query("SELECT * FROM reviewer_findings WHERE state = 'open'")
        return {r["fingerprint"]: r for r in rows if rules is None or r["rule"] in rules}

    def findings_by_print(self, prints: list[str]) -> dict[str, Row]:
        out: dict[str, Row] = {}
        for i in range(0, len(prints), 500):
            chunk = prints[i : i + 500]
            marks = ", ".join(f":p{j}" for j in range(len(chunk)))
            rows = self.store.query(
                f"SELECT * FROM reviewer_findings WHERE fingerprint IN ({marks})",
                {f"p{j}": p for j, p in enumerate(chunk)},
            )
            out.update({r["fingerprint"]: r for r in rows})
        return out

    def list_findings(
        self, state: str | None = "open", rule: str | None = None, limit: int = 500
    ) -> list[Row]:
        conds: list[str] = []
        params: dict[str, Any] = {"n": limit}
        if state:
            conds.append("state = :state")
            params["state"] = state
        if rule:
            conds.append("rule = :rule")
            params["rule"] = rule
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        return self.store.query(
            f"""SELECT * FROM reviewer_findings {where}
                ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'error' THEN 1
                  WHEN 'warning' THEN 2 ELSE 3 END, last_seen DESC LIMIT :n""",
            params,
        )

    def open_finding(self, values: dict[str, Any]) -> None:
        """Record a finding seen for the first time. ``values``: ``fp``, ``rule``,
        ``kind``, ``subject``, ``severity``, ``summary``, ``payload`` (JSON text),
        ``at``, ``run`` (the run id) and ``silenced_by``."""
        self.store.execute(
            """INSERT INTO reviewer_findings (fingerprint, rule, kind, subject, severity,
                   summary, payload, state, first_seen, last_seen, silenced_by, last_run_id)
               VALUES (:fp, :rule, :kind, :subject, :severity, :summary, :payload, 'open',
                   :at, :at, :silenced_by, :run)""",
            values,
        )

    def refresh_finding(self, values: dict[str, Any], *, reopened: bool) -> None:
        """A known finding fired again (``values`` as for ``open_finding``); ``reopened``
        when it had resolved, which counts a regression."""
        self.store.execute(
            f"""UPDATE reviewer_findings SET severity = :severity, summary = :summary,
                   payload = :payload, state = 'open', last_seen = :at,
                   times_seen = times_seen + 1, clear_streak = 0, silenced_by = :silenced_by,
                   last_run_id = :run
                   {", resolved_at = NULL, regressions = regressions + 1" if reopened else ""}
               WHERE fingerprint = :fp""",
            values,
        )

    def set_clear_streak(self, fingerprint: str, streak: int) -> None:
        """How many cycles in a row an open finding has not fired."""
        self.store.execute(
            "UPDATE reviewer_findings SET clear_streak = :s WHERE fingerprint = :fp",
            {"s": streak, "fp": fingerprint},
        )

    def resolve_finding(self, fingerprint: str, streak: int, at: str) -> None:
        """An open finding stayed clear for ``streak`` cycles: it is resolved at ``at``."""
        self.store.execute(
            """UPDATE reviewer_findings SET clear_streak = :s, state = 'resolved',
                   resolved_at = :at WHERE fingerprint = :fp""",
            {"s": streak, "fp": fingerprint, "at": at},
        )

    # -- counts (metrics and the review page) --------------------------------------
    def run_counts(self) -> list[Row]:
        """Review runs by final status: ``status``, ``n``."""
        return self.store.query("SELECT status, COUNT(*) AS n FROM reviewer_runs GROUP BY status")

    def finding_counts(self) -> list[Row]:
        """Findings by rule and state: ``rule``, ``state``, ``n``."""
        return self.store.query(
            "SELECT rule, state, COUNT(*) AS n FROM reviewer_findings GROUP BY rule, state"
        )

    def proposal_counts(self) -> list[Row]:
        """Proposals by rule and state: ``rule``, ``state``, ``n``."""
        return self.store.query(
            "SELECT rule, state, COUNT(*) AS n FROM reviewer_proposals GROUP BY rule, state"
        )

    def proposal_state_counts(self) -> dict[str, int]:
        """Proposals by state."""
        return {
            r["state"]: r["n"]
            for r in self.store.query(
                "SELECT state, COUNT(*) AS n FROM reviewer_proposals GROUP BY state"
            )
        }

    # -- goals defined over the API ---------------------------------------------------
    def define_goal(self, goal: dict[str, Any], at: str, actor: str) -> None:
        """Store (or redefine) a goal by id: ``id``, ``title``, ``target``, ``deadline``,
        ``label``, ``spec``, ``task_type``."""
        self.store.execute(
            """INSERT INTO reviewer_goals
                   (id, title, target, deadline, label, spec, task_type,
                    created_at, updated_at, created_by)
               VALUES (:id, :title, :target, :deadline, :label, :spec, :task_type,
                       :at, :at, :actor)
               ON CONFLICT (id) DO UPDATE SET title = excluded.title,
                   target = excluded.target, deadline = excluded.deadline,
                   label = excluded.label, spec = excluded.spec,
                   task_type = excluded.task_type, updated_at = excluded.updated_at""",
            {**goal, "at": at, "actor": actor},
        )

    # -- meta -----------------------------------------------------------------------
    def set_meta(self, key: str, value: str) -> None:
        """A new ``reviewer_meta`` entry (e.g. ``demo``: the store a demo built)."""
        self.store.execute(
            "INSERT INTO reviewer_meta (key, value) VALUES (:key, :value)",
            {"key": key, "value": value},
        )

    # -- proposals ---------------------------------------------------------------
    def proposal(self, proposal_id: int) -> Proposal:
        rows = self.store.query(
            "SELECT * FROM reviewer_proposals WHERE id = :id", {"id": proposal_id}
        )
        if not rows:
            raise NotFound(f"no proposal with id {proposal_id}")
        return _proposal(rows[0])

    def proposals(
        self, state: str | None = None, rule: str | None = None, limit: int = 500
    ) -> list[Proposal]:
        conds: list[str] = []
        params: dict[str, Any] = {"n": limit}
        if state:
            conds.append("state = :state")
            params["state"] = state
        if rule:
            conds.append("rule = :rule")
            params["rule"] = rule
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        rows = self.store.query(
            f"SELECT * FROM reviewer_proposals {where} ORDER BY id DESC LIMIT :n", params
        )
        return [_proposal(r) for r in rows]

    def latest_proposals(self, prints: list[str]) -> dict[str, Row]:
        """The newest proposal of each fingerprint (active or not)."""
        out: dict[str, Row] = {}
        for i in range(0, len(prints), 500):
            chunk = prints[i : i + 500]
            marks = ", ".join(f":p{j}" for j in range(len(chunk)))
            rows = self.store.query(
                f"""SELECT * FROM reviewer_proposals WHERE id IN (
                        SELECT MAX(id) FROM reviewer_proposals
                        WHERE fingerprint IN ({marks}) GROUP BY fingerprint)""",
                {f"p{j}": p for j, p in enumerate(chunk)},
            )
            out.update({r["fingerprint"]: r for r in rows})
        return out

    def active_proposal(self, fingerprint: str) -> Proposal | None:
        rows = self.store.query(
            f"SELECT * FROM reviewer_proposals WHERE fingerprint = :f AND state IN {_ACTIVE}",
            {"f": fingerprint},
        )
        return _proposal(rows[0]) if rows else None

    def create_proposal(
        self,
        *,
        fingerprint: str,
        rule: str,
        kind: str,
        subject: str,
        severity: Severity,
        title: str,
        body: str,
        approval: Approval,
        at: str,
        run_id: int | None,
        regression_of: int | None = None,
        actor: str = "reviewer",
    ) -> Proposal:
        rows = self.store.query(
            """INSERT INTO reviewer_proposals (fingerprint, rule, kind, subject, severity, title,
                   body, state, approval, created_at, updated_at, run_id, regression_of)
               VALUES (:fingerprint, :rule, :kind, :subject, :severity, :title, :body, 'pending',
                   :approval, :at, :at, :run_id, :regression_of)
               RETURNING *""",
            {
                "fingerprint": fingerprint,
                "rule": rule,
                "kind": kind,
                "subject": subject,
                "severity": severity.value,
                "title": title,
                "body": body,
                "approval": approval.value,
                "at": at,
                "run_id": run_id,
                "regression_of": regression_of,
            },
        )
        proposal = _proposal(rows[0])
        self.audit(
            at,
            actor,
            "proposal.created",
            proposal=proposal,
            to_state=ProposalState.pending.value,
            reason=f"regression of proposal {regression_of}" if regression_of else "finding fired",
            details={"run_id": run_id, "approval": approval.value, "severity": severity.value},
        )
        return proposal

    def update_proposal_body(self, proposal: Proposal, title: str, body: str, at: str) -> None:
        self.store.execute(
            "UPDATE reviewer_proposals SET title = :t, body = :b, updated_at = :at WHERE id = :id",
            {"t": title, "b": body, "at": at, "id": proposal.id},
        )

    def transition(
        self,
        proposal: Proposal,
        to: ProposalState,
        *,
        at: str,
        actor: str,
        reason: str | None,
        allowed_from: tuple[ProposalState, ...],
        task_id: str | None = None,
        cooldown_until: str | None = None,
        decided: bool = False,
    ) -> Proposal:
        """Move a proposal to ``to`` if it is in one of ``allowed_from``; audit it."""
        if proposal.state not in allowed_from:
            raise InvalidTransition(
                f"proposal {proposal.id} is {proposal.state.value}; it cannot become {to.value}"
                f" (only from {', '.join(s.value for s in allowed_from)})"
            )
        marks = ", ".join(f"'{s.value}'" for s in allowed_from)
        sets = ["state = :to", "updated_at = :at"]
        params: dict[str, Any] = {"to": to.value, "at": at, "id": proposal.id}
        if task_id is not None:
            sets.append("task_id = :task_id")
            params["task_id"] = task_id
        if cooldown_until is not None:
            sets.append("cooldown_until = :cd")
            params["cd"] = cooldown_until
        if decided:
            sets += ["decided_by = :actor", "reason = :reason"]
            params.update(actor=actor, reason=reason)
        rows = self.store.query(
            f"UPDATE reviewer_proposals SET {', '.join(sets)}"
            f" WHERE id = :id AND state IN ({marks}) RETURNING *",
            params,
        )
        if not rows:  # lost a race with another writer
            current = self.proposal(proposal.id)
            raise InvalidTransition(
                f"proposal {proposal.id} is {current.state.value}; it cannot become {to.value}"
            )
        updated = _proposal(rows[0])
        self.audit(
            at,
            actor,
            f"proposal.{to.value}",
            proposal=updated,
            from_state=proposal.state.value,
            to_state=to.value,
            reason=reason,
            details={"task_id": task_id} if task_id else None,
        )
        return updated

    def in_cooldown(self, prints: list[str], at: str) -> set[str]:
        """Fingerprints rejected with a cooldown that has not yet run out at ``at``."""
        out: set[str] = set()
        for i in range(0, len(prints), 500):
            chunk = prints[i : i + 500]
            marks = ", ".join(f":p{j}" for j in range(len(chunk)))
            rows = self.store.query(
                f"""SELECT DISTINCT fingerprint FROM reviewer_proposals
                    WHERE state = 'rejected' AND cooldown_until > :at
                      AND fingerprint IN ({marks})""",
                {"at": at, **{f"p{j}": p for j, p in enumerate(chunk)}},
            )
            out.update(r["fingerprint"] for r in rows)
        return out

    # -- silences ------------------------------------------------------------------
    def add_silence(
        self, *, rule: str, subject: str, until: str, by: str, comment: str, at: str
    ) -> Silence:
        rows = self.store.query(
            """INSERT INTO reviewer_silences (rule, subject, until, created_by, comment, created_at)
               VALUES (:rule, :subject, :until, :by, :comment, :at) RETURNING *""",
            {
                "rule": rule,
                "subject": subject,
                "until": until,
                "by": by,
                "comment": comment,
                "at": at,
            },
        )
        silence = _silence(rows[0])
        self.audit(
            at,
            by,
            "silence.added",
            rule=rule,
            subject=subject,
            reason=comment,
            details={"silence_id": silence.id, "until": until},
        )
        return silence

    def expire_silence(self, silence_id: int, *, by: str, at: str, reason: str | None) -> Silence:
        rows = self.store.query(
            "SELECT * FROM reviewer_silences WHERE id = :id", {"id": silence_id}
        )
        if not rows:
            raise NotFound(f"no silence with id {silence_id}")
        self.store.execute(
            "UPDATE reviewer_silences SET expired_at = :at WHERE id = :id AND expired_at IS NULL",
            {"at": at, "id": silence_id},
        )
        silence = _silence({**rows[0], "expired_at": rows[0]["expired_at"] or at})
        self.audit(
            at,
            by,
            "silence.expired",
            rule=silence.rule,
            subject=silence.subject,
            reason=reason,
            details={"silence_id": silence_id},
        )
        return silence

    def silences(self, at: str | None = None, include_expired: bool = False) -> list[Silence]:
        """Silences in force at ``at`` (all of them with ``include_expired``)."""
        if include_expired or at is None:
            rows = self.store.query("SELECT * FROM reviewer_silences ORDER BY id")
        else:
            rows = self.store.query(
                """SELECT * FROM reviewer_silences
                   WHERE expired_at IS NULL AND until > :at AND created_at <= :at ORDER BY id""",
                {"at": at},
            )
        return [_silence(r) for r in rows]


def silence_for(silences: list[Silence], rule: str, subject: str) -> Silence | None:
    """The first silence whose rule and subject globs match."""
    for s in silences:
        if fnmatch.fnmatchcase(rule, s.rule) and fnmatch.fnmatchcase(subject, s.subject):
            return s
    return None
