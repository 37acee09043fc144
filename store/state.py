"""The reviewer's own tables: runs, findings, proposals, silences, audit log.

Written once in portable SQL against any ``Store``. Every state change of a
proposal or a silence goes through here, and each one writes its audit entry
in the same transaction as the change.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from typing import Any

from store._dialect import SQLITE
from store.base import Row, Store
from store.controls import ControlsState
from store.models import (
    ACTIVE_PROPOSAL_STATES,
    Approval,
    InvalidTransition,
    NotFound,
    Outcome,
    Proposal,
    ProposalState,
    ReviewRun,
    Severity,
    Silence,
)

_ACTIVE = "(" + ", ".join(f"'{s.value}'" for s in ACTIVE_PROPOSAL_STATES) + ")"
_SEVERITY_ORDER = (
    "CASE severity WHEN 'critical' THEN 0 WHEN 'error' THEN 1 WHEN 'warning' THEN 2 ELSE 3 END"
)


def _like_prefix(text: str) -> str:
    """``text`` with LIKE's wildcards escaped (escape character ``!``)."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _proposal(row: Row) -> Proposal:
    return Proposal.model_validate({k: row[k] for k in Proposal.model_fields if k in row})


def _silence(row: Row) -> Silence:
    return Silence.model_validate(row)


def _run(row: Row) -> ReviewRun:
    data = dict(row)
    data["errors"] = json.loads(row["errors"] or "[]")
    return ReviewRun.model_validate(data)


class ReviewerState(ControlsState):
    """Reads and writes of the ``reviewer_*`` tables (and ``controls``: ``store.controls``)."""

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
        proposal_id: int | None = None,
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
                "proposal_id": proposal.id if proposal else proposal_id,
                "fingerprint": fingerprint or (proposal.fingerprint if proposal else None),
                "rule": rule or (proposal.rule if proposal else None),
                "subject": subject or (proposal.subject if proposal else None),
                "from_state": from_state,
                "to_state": to_state,
                "reason": reason,
                "details": json.dumps(details) if details else None,
            },
        )

    def audit_log(
        self,
        proposal_id: int | None = None,
        limit: int = 200,
        *,
        rule: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        since: str | None = None,
    ) -> list[Row]:
        """Audit entries: one proposal's trail (oldest first), or the newest ``limit``
        entries matching the filters. ``action`` matches itself or the actions it
        prefixes (``proposal`` → ``proposal.approved``, ...); ``actor`` is the exact
        actor or a token acting for someone (``dana via ops`` matches ``ops``);
        ``since`` an ``at`` lower bound in the stored timestamp form."""
        if proposal_id is not None:
            return self.store.query(
                "SELECT * FROM reviewer_audit WHERE proposal_id = :p ORDER BY id",
                {"p": proposal_id},
            )
        conds: list[str] = []
        params: dict[str, Any] = {"n": limit}
        if rule:
            conds.append("rule = :rule")
            params["rule"] = rule
        if action:
            # action.* as a range ('/' sorts just after '.'): no LIKE, no wildcards.
            conds.append("(action = :action OR (action > :action_lo AND action < :action_hi))")
            params.update(action=action, action_lo=action + ".", action_hi=action + "/")
        if actor:
            conds.append("(actor = :actor OR actor LIKE :actor_via ESCAPE '!')")
            params.update(actor=actor, actor_via="% via " + _like_prefix(actor))
        if since:
            conds.append("at >= :since")
            params["since"] = since
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        return self.store.query(
            f"SELECT * FROM reviewer_audit {where} ORDER BY id DESC LIMIT :n", params
        )

    def audit_search(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        rule: str | None = None,
        limit: int = 200,
    ) -> list[Row]:
        """The newest audit entries, optionally of one actor, action (or action prefix
        such as ``proposal.``) and rule."""
        conds: list[str] = []
        params: dict[str, Any] = {"n": limit}
        if actor:
            conds.append("actor = :actor")
            params["actor"] = actor
        if action:
            conds.append("(action = :action OR action LIKE :action_prefix)")
            params.update(action=action, action_prefix=action.rstrip(".") + ".%")
        if rule:
            conds.append("rule = :rule")
            params["rule"] = rule
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        return self.store.query(
            f"SELECT * FROM reviewer_audit {where} ORDER BY id DESC LIMIT :n", params
        )

    def audit_facets(self) -> dict[str, list[str]]:
        """The actors and actions the audit log holds: the page's filter choices."""
        return {
            col: [
                r["v"]
                for r in self.store.query(
                    f"SELECT DISTINCT {col} AS v FROM reviewer_audit ORDER BY v"
                )
            ]
            for col in ("actor", "action")
        }

    def audit_for_prints(self, prints: list[str], per_print: int = 20) -> dict[str, list[Row]]:
        """The audit entries of each fingerprint, oldest first (at most ``per_print``)."""
        out: dict[str, list[Row]] = {}
        for i in range(0, len(prints), 500):
            chunk = prints[i : i + 500]
            marks = ", ".join(f":p{j}" for j in range(len(chunk)))
            rows = self.store.query(
                f"""SELECT * FROM reviewer_audit WHERE fingerprint IN ({marks})
                    ORDER BY fingerprint, id""",
                {f"p{j}": p for j, p in enumerate(chunk)},
            )
            for r in rows:
                out.setdefault(r["fingerprint"], []).append(r)
        return {fp: entries[-per_print:] for fp, entries in out.items()}

    # -- runs -------------------------------------------------------------------
    def start_run(
        self,
        started_at: str,
        now: str,
        trigger: str,
        *,
        tick: str | None = None,
        runner: str | None = None,
    ) -> int:
        rows = self.store.query(
            """INSERT INTO reviewer_runs (started_at, now, status, trigger, tick, runner)
               VALUES (:s, :n, 'running', :t, :tick, :runner) RETURNING id""",
            {"s": started_at, "n": now, "t": trigger, "tick": tick, "runner": runner},
        )
        return int(rows[0]["id"])

    def run_for_tick(self, tick: str) -> ReviewRun | None:
        """The run of one scheduled instant, if a replica ran (or is running) it."""
        rows = self.store.query("SELECT * FROM reviewer_runs WHERE tick = :t", {"t": tick})
        return _run(rows[0]) if rows else None

    def running_runs(self) -> list[ReviewRun]:
        rows = self.store.query("SELECT * FROM reviewer_runs WHERE status = 'running' ORDER BY id")
        return [_run(r) for r in rows]

    def mark_run_interrupted(self, run_id: int) -> bool:
        """Mark one run whose process is gone ``interrupted``; False if it was no longer running."""
        rows = self.store.query(
            "UPDATE reviewer_runs SET status = 'interrupted'"
            " WHERE id = :id AND status = 'running' RETURNING id",
            {"id": run_id},
        )
        return bool(rows)

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

    # -- incidents and bursts ----------------------------------------------------------
    def open_incidents(self) -> list[Row]:
        """Open incidents and bursts, oldest first."""
        return self.store.query("SELECT * FROM reviewer_incidents WHERE state = 'open' ORDER BY id")

    def list_incidents(self, state: str | None = "open", limit: int = 200) -> list[Row]:
        """Incidents and bursts, newest first (``state`` None: all of them)."""
        where = "WHERE state = :state" if state else ""
        return self.store.query(
            f"SELECT * FROM reviewer_incidents {where} ORDER BY id DESC LIMIT :n",
            {"state": state, "n": limit},
        )

    def incident_by_print(self, fingerprint: str) -> Row | None:
        """The newest incident or burst whose proposal carries ``fingerprint``."""
        rows = self.store.query(
            "SELECT * FROM reviewer_incidents WHERE fingerprint = :f ORDER BY id DESC LIMIT 1",
            {"f": fingerprint},
        )
        return rows[0] if rows else None

    def open_incident(
        self,
        *,
        kind: str,
        key: str,
        fingerprint: str,
        rule: str,
        cause: str | None,
        members: list[str],
        payload: str,
        at: str,
        reason: str,
    ) -> int:
        """Open an incident (or burst) over ``members`` (finding prints); audited."""
        rows = self.store.query(
            """INSERT INTO reviewer_incidents (kind, key, fingerprint, state, cause, members,
                   payload, opened_at, updated_at)
               VALUES (:kind, :key, :fp, 'open', :cause, :members, :payload, :at, :at)
               RETURNING id""",
            {
                "kind": kind,
                "key": key,
                "fp": fingerprint,
                "cause": cause,
                "members": json.dumps(members),
                "payload": payload,
                "at": at,
            },
        )
        incident_id = int(rows[0]["id"])
        self._point_members(incident_id, members)
        self.audit(
            at,
            "reviewer",
            f"{kind}.opened",
            fingerprint=fingerprint,
            rule=rule,
            subject=key,
            reason=reason,
            details={"incident_id": incident_id, "cause": cause, "members": members},
        )
        return incident_id

    def update_incident(
        self,
        incident_id: int,
        *,
        cause: str | None,
        members: list[str],
        payload: str,
        at: str,
        added: list[str],
        rule: str,
    ) -> None:
        """An open incident's current cause, members and evidence; new members audited."""
        row = self.store.query(
            "SELECT kind, key, fingerprint FROM reviewer_incidents WHERE id = :id",
            {"id": incident_id},
        )[0]
        self.store.execute(
            """UPDATE reviewer_incidents SET cause = :cause, members = :members,
                   payload = :payload, updated_at = :at WHERE id = :id""",
            {
                "cause": cause,
                "members": json.dumps(members),
                "payload": payload,
                "at": at,
                "id": incident_id,
            },
        )
        self._point_members(incident_id, members)
        if added:
            self.audit(
                at,
                "reviewer",
                f"{row['kind']}.grew",
                fingerprint=row["fingerprint"],
                rule=rule,
                subject=row["key"],
                reason=f"{len(added)} more finding(s) share its cause",
                details={"incident_id": incident_id, "added": added},
            )

    def resolve_incident(self, incident_id: int, *, at: str, reason: str) -> None:
        """Close an incident (or burst): its members are judged on their own again."""
        row = self.store.query(
            "SELECT kind, key, fingerprint FROM reviewer_incidents WHERE id = :id",
            {"id": incident_id},
        )[0]
        self.store.execute(
            """UPDATE reviewer_incidents SET state = 'resolved', resolved_at = :at,
                   updated_at = :at WHERE id = :id""",
            {"at": at, "id": incident_id},
        )
        self.store.execute(
            "UPDATE reviewer_findings SET incident_id = NULL WHERE incident_id = :id",
            {"id": incident_id},
        )
        self.audit(
            at,
            "reviewer",
            f"{row['kind']}.resolved",
            fingerprint=row["fingerprint"],
            subject=row["key"],
            reason=reason,
            details={"incident_id": incident_id},
        )

    def _point_members(self, incident_id: int, members: list[str]) -> None:
        """Each member finding names the open incident it belongs to (and only members do)."""
        self.store.execute(
            "UPDATE reviewer_findings SET incident_id = NULL WHERE incident_id = :id",
            {"id": incident_id},
        )
        for i in range(0, len(members), 500):
            chunk = members[i : i + 500]
            marks = ", ".join(f":p{j}" for j in range(len(chunk)))
            self.store.execute(
                f"UPDATE reviewer_findings SET incident_id = :id WHERE fingerprint IN ({marks})",
                {"id": incident_id, **{f"p{j}": p for j, p in enumerate(chunk)}},
            )

    # -- goals defined over the API ---------------------------------------------------
    def define_goal(self, goal: dict[str, Any], at: str, actor: str) -> None:
        """Store (or redefine) a goal by id: ``id``, ``title``, ``target``, ``deadline``,
        ``label``, ``spec``, ``task_type``; audited as ``goal.defined``."""
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
        self.audit(at, actor, "goal.defined", subject=f"goal:{goal['id']}", details=goal)

    # -- notifications (reviewer/notify.py) --------------------------------------------
    def notify_watermark(self) -> tuple[int, int] | None:
        """The last audit id and run id an earlier notification batch covered (None: none yet)."""
        # Each batch starts where the one before ended, so the newest holds the marks.
        rows = self.store.query(
            """SELECT last_audit_id, last_run_id FROM reviewer_notify_batches
               ORDER BY id DESC LIMIT 1"""
        )
        if not rows:
            return None
        return int(rows[0]["last_audit_id"]), int(rows[0]["last_run_id"])

    def audit_id_before(self, at: str) -> int:
        """The last audit id written before ``at`` (0: none)."""
        rows = self.store.query(
            "SELECT MAX(id) AS id FROM reviewer_audit WHERE at < :at", {"at": at}
        )
        return int(rows[0]["id"] or 0) if rows else 0

    def last_audit_id(self) -> int:
        rows = self.store.query("SELECT MAX(id) AS id FROM reviewer_audit")
        return int(rows[0]["id"] or 0) if rows else 0

    def audit_events(self, after: int, upto: int, chunk: int = 1000) -> Iterator[Row]:
        """Audit rows with ``after < id <= upto`` in id order, in chunks, each with the
        severity, title and kind of its proposal or finding (when it has one)."""
        while after < upto:
            rows = self.store.query(
                """SELECT a.id, a.at, a.actor, a.action, a.proposal_id, a.fingerprint, a.rule,
                       a.subject, a.from_state, a.to_state, a.reason, a.details,
                       COALESCE(p.severity, f.severity) AS severity,
                       p.title AS title, COALESCE(p.kind, f.kind) AS kind,
                       p.task_id AS task_id, f.summary AS summary
                   FROM reviewer_audit a
                   LEFT JOIN reviewer_proposals p ON p.id = a.proposal_id
                   LEFT JOIN reviewer_findings f ON f.fingerprint = a.fingerprint
                   WHERE a.id > :after AND a.id <= :upto ORDER BY a.id LIMIT :n""",
                {"after": after, "upto": upto, "n": chunk},
            )
            if not rows:
                return
            yield from rows
            after = int(rows[-1]["id"])

    def failed_runs(self, after: int, upto: int) -> list[ReviewRun]:
        """Runs with ``after < id <= upto`` that failed or lost a rule (``partial``)."""
        rows = self.store.query(
            """SELECT * FROM reviewer_runs WHERE id > :after AND id <= :upto
                 AND status IN ('failed', 'partial') ORDER BY id""",
            {"after": after, "upto": upto},
        )
        return [_run(r) for r in rows]

    def add_notify_batch(
        self, *, at: str, run_id: int | None, audit: tuple[int, int], runs: tuple[int, int]
    ) -> int | None:
        """Record a batch covering audit ids and run ids ``(after, last]``; None when
        another process recorded one from the same watermark first."""
        rows = self.store.query(
            """INSERT INTO reviewer_notify_batches (created_at, run_id, after_audit_id,
                   last_audit_id, after_run_id, last_run_id)
               VALUES (:at, :run, :a0, :a1, :r0, :r1)
               ON CONFLICT (after_audit_id, after_run_id) DO NOTHING RETURNING id""",
            {"at": at, "run": run_id, "a0": audit[0], "a1": audit[1], "r0": runs[0], "r1": runs[1]},
        )
        return int(rows[0]["id"]) if rows else None

    def queue_notification(
        self, *, batch_id: int, receiver: str, events: int, payload: str, key: str, at: str
    ) -> None:
        """A receiver's message of a batch, pending in the outbox."""
        self.store.execute(
            """INSERT INTO reviewer_notify_outbox (batch_id, receiver, events, payload,
                   idempotency_key, status, created_at, updated_at)
               VALUES (:b, :r, :e, :p, :k, 'pending', :at, :at)""",
            {"b": batch_id, "r": receiver, "e": events, "p": payload, "k": key, "at": at},
        )

    def pending_notifications(self, receiver: str, limit: int = 20) -> list[Row]:
        """A receiver's messages waiting to be sent, oldest first."""
        return self.store.query(
            """SELECT * FROM reviewer_notify_outbox WHERE status = 'pending' AND receiver = :r
               ORDER BY id LIMIT :n""",
            {"r": receiver, "n": limit},
        )

    def notification_sent(self, outbox_id: int, at: str) -> None:
        self.store.execute(
            """UPDATE reviewer_notify_outbox SET status = 'sent', sent_at = :at, updated_at = :at
               WHERE id = :id AND status = 'pending'""",
            {"id": outbox_id, "at": at},
        )

    def notification_failed(self, outbox_id: int, error: str, at: str, *, drop: bool) -> None:
        """One more failed cycle for a message; ``drop`` gives up on it (audited)."""
        rows = self.store.query(
            f"""UPDATE reviewer_notify_outbox SET failures = failures + 1, last_error = :e,
                   updated_at = :at{", status = 'dropped'" if drop else ""}
                WHERE id = :id AND status = 'pending' RETURNING receiver, batch_id, failures""",
            {"id": outbox_id, "e": error, "at": at},
        )
        if drop and rows:
            self.audit(
                at,
                "reviewer",
                "notification.dropped",
                subject=f"receiver:{rows[0]['receiver']}",
                reason=error,
                details={"batch_id": rows[0]["batch_id"], "failures": rows[0]["failures"]},
            )

    def drop_notifications_of(self, receivers: list[str], at: str) -> int:
        """Drop pending messages of receivers no longer configured; how many."""
        marks = ", ".join(f":r{i}" for i in range(len(receivers))) or "NULL"
        rows = self.store.query(
            f"""UPDATE reviewer_notify_outbox SET status = 'dropped', updated_at = :at,
                   last_error = 'receiver no longer configured'
                WHERE status = 'pending' AND receiver NOT IN ({marks}) RETURNING id""",
            {"at": at, **{f"r{i}": r for i, r in enumerate(receivers)}},
        )
        return len(rows)

    def notification_counts(self) -> list[Row]:
        """Per receiver: ``sent``, ``pending``, ``dropped`` messages, ``failures`` (failed
        cycles over all messages), ``last_sent_at``."""
        return self.store.query(
            """SELECT receiver,
                   SUM(CASE WHEN status = 'sent' THEN 1 ELSE 0 END) AS sent,
                   SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END) AS pending,
                   SUM(CASE WHEN status = 'dropped' THEN 1 ELSE 0 END) AS dropped,
                   SUM(CASE WHEN status = 'pending' AND failures > 0 THEN 1 ELSE 0 END)
                       AS failing,
                   SUM(failures) AS failures, MAX(sent_at) AS last_sent_at
               FROM reviewer_notify_outbox GROUP BY receiver"""
        )

    def notification_last_errors(self) -> dict[str, Row]:
        """Each receiver's latest failure: ``last_error``, ``updated_at``, ``status``."""
        rows = self.store.query(
            """SELECT receiver, last_error, updated_at, status FROM reviewer_notify_outbox
               WHERE id IN (SELECT MAX(id) FROM reviewer_notify_outbox
                            WHERE last_error IS NOT NULL GROUP BY receiver)"""
        )
        return {r["receiver"]: r for r in rows}

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

    def proposal_queue(
        self,
        *,
        state: str | None = None,
        rule: str | None = None,
        kind: str | None = None,
        severity: str | None = None,
        limit: int = 200,
    ) -> list[Proposal]:
        """Proposals as the review page lists them: pending first, then by severity
        (critical first), then by age (oldest first); each filter optional."""
        conds: list[str] = []
        params: dict[str, Any] = {"n": limit}
        for col, value in (
            ("state", state),
            ("rule", rule),
            ("kind", kind),
            ("severity", severity),
        ):
            if value:
                conds.append(f"{col} = :{col}")
                params[col] = value
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        rows = self.store.query(
            f"""SELECT * FROM reviewer_proposals {where}
                ORDER BY CASE state WHEN 'pending' THEN 0 WHEN 'approved' THEN 1 ELSE 2 END,
                  {_SEVERITY_ORDER}, created_at, id LIMIT :n""",
            params,
        )
        return [_proposal(r) for r in rows]

    def proposal_facets(self) -> list[Row]:
        """The (rule, kind) pairs proposals exist for: the page's filter choices."""
        return self.store.query(
            "SELECT DISTINCT rule, kind FROM reviewer_proposals ORDER BY rule, kind"
        )

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

    # -- outcomes: did a filed task help? ----------------------------------------------
    def outcome_candidates(self, at: str, run_id: int | None) -> list[tuple[Proposal, Row]]:
        """Scheduled proposals to judge as of ``at``: those whose task has ended and that
        have no outcome yet, and ``fixed`` ones whose finding fired again since.

        Each comes with a row of ``t_status`` and ``t_ended`` (its task's end),
        ``f_state`` and ``f_last_seen`` (its finding), and ``cycles``: the review cycles
        after the task ended up to ``at``, counting the run ``run_id`` under way."""
        ended = "COALESCE(t.finished_at, t.updated_at, t.created_at)"
        rows = self.store.query(
            f"""SELECT p.*, t.status AS t_status, {ended} AS t_ended,
                       f.state AS f_state, f.last_seen AS f_last_seen,
                       (SELECT COUNT(*) FROM reviewer_runs r
                        WHERE r.now > {ended} AND r.now <= :at
                          AND (r.status IN ('ok', 'partial') OR r.id = :run)) AS cycles
                FROM reviewer_proposals p
                JOIN tasks t ON t.id = p.task_id
                LEFT JOIN reviewer_findings f ON f.fingerprint = p.fingerprint
                WHERE p.task_id IS NOT NULL AND (
                    (p.outcome IS NULL AND t.status IN ('completed', 'cancelled', 'failed')
                     AND {ended} <= :at)
                    OR (p.outcome = 'fixed' AND f.last_seen > p.outcome_at))
                ORDER BY p.id""",
            {"at": at, "run": run_id if run_id is not None else -1},
        )
        return [(_proposal(r), r) for r in rows]

    def set_task_ended(self, proposal: Proposal, status: str, ended_at: str, at: str) -> Proposal:
        """Note that a proposal's backlog task ended (``completed|cancelled|failed``)."""
        rows = self.store.query(
            """UPDATE reviewer_proposals SET task_status = :s, task_ended_at = :e
               WHERE id = :id RETURNING *""",
            {"s": status, "e": ended_at, "id": proposal.id},
        )
        self.audit(
            at,
            "reviewer",
            "proposal.task_ended",
            proposal=proposal,
            reason=f"task {proposal.task_id} was {status} at {ended_at}",
            details={"task_status": status, "task_ended_at": ended_at},
        )
        return _proposal(rows[0])

    def set_outcome(
        self,
        proposal: Proposal,
        outcome: Outcome,
        *,
        at: str,
        reason: str,
        actor: str = "reviewer",
        details: dict[str, Any] | None = None,
    ) -> Proposal:
        """Record what became of a scheduled proposal; the change is audited."""
        rows = self.store.query(
            """UPDATE reviewer_proposals SET outcome = :o, outcome_at = :at
               WHERE id = :id RETURNING *""",
            {"o": outcome.value, "at": at, "id": proposal.id},
        )
        self.audit(
            at,
            actor,
            "proposal.outcome",
            proposal=proposal,
            from_state=proposal.outcome.value if proposal.outcome else None,
            to_state=outcome.value,
            reason=reason,
            details=details,
        )
        return _proposal(rows[0])

    # -- the breaker on the reviewer itself ------------------------------------------------
    def rejections_since(self, since: str) -> dict[str, int]:
        """Rejections per rule at or after ``since`` and after the rule's breaker was last
        reset: proposals a person rejected, and tasks filed for the rule then cancelled."""
        rows = self.store.query(
            """SELECT x.rule, COUNT(*) AS n FROM (
                   SELECT a.rule, a.at FROM reviewer_audit a
                   WHERE a.action = 'proposal.rejected' AND a.at >= :since
                   UNION ALL
                   SELECT p.rule, p.outcome_at AS at FROM reviewer_proposals p
                   WHERE p.outcome = 'abandoned' AND p.task_status = 'cancelled'
                     AND p.outcome_at >= :since
               ) x LEFT JOIN reviewer_breakers b ON b.rule = x.rule
               WHERE b.reset_at IS NULL OR x.at > b.reset_at
               GROUP BY x.rule""",
            {"since": since},
        )
        return {r["rule"]: int(r["n"]) for r in rows}

    def tripped_breakers(self) -> dict[str, Row]:
        """Rules whose breaker is tripped (not yet reset): ``tripped_at``, ``rejections``,
        ``reason``."""
        rows = self.store.query(
            """SELECT * FROM reviewer_breakers
               WHERE tripped_at IS NOT NULL AND reset_at IS NULL ORDER BY rule"""
        )
        return {r["rule"]: r for r in rows}

    def trip_breaker(self, rule: str, *, at: str, rejections: int, reason: str) -> None:
        """Trip a rule's breaker: its ``auto`` approval acts as ``manual`` until a reset."""
        self.store.execute(
            """INSERT INTO reviewer_breakers (rule, tripped_at, rejections, reason)
               VALUES (:rule, :at, :n, :reason)
               ON CONFLICT (rule) DO UPDATE SET tripped_at = excluded.tripped_at,
                   rejections = excluded.rejections, reason = excluded.reason,
                   reset_at = NULL, reset_by = NULL""",
            {"rule": rule, "at": at, "n": rejections, "reason": reason},
        )
        self.audit(
            at,
            "reviewer",
            "rule.breaker_tripped",
            rule=rule,
            from_state="auto",
            to_state="manual",
            reason=reason,
            details={"rejections": rejections},
        )

    def reset_breaker(self, rule: str, *, by: str, at: str, reason: str | None) -> Row:
        """A person lifts a rule's tripped breaker; its configured approval applies again."""
        rows = self.store.query(
            """UPDATE reviewer_breakers SET reset_at = :at, reset_by = :by
               WHERE rule = :rule AND tripped_at IS NOT NULL AND reset_at IS NULL
               RETURNING *""",
            {"rule": rule, "at": at, "by": by},
        )
        if not rows:
            raise NotFound(f"the breaker of rule {rule!r} is not tripped; nothing to reset")
        self.audit(
            at,
            by,
            "rule.breaker_reset",
            rule=rule,
            from_state="manual",
            to_state="auto",
            reason=reason,
            details={"tripped_at": rows[0]["tripped_at"]},
        )
        return rows[0]

    # -- the precision ledger ----------------------------------------------------------
    def ledger_rows(self) -> dict[str, dict[str, Any]]:
        """Per rule: ``findings``, ``proposals``, ``approvals`` (by a person), ``auto``
        (filed on ``approval = auto``), ``rejections``, each outcome, ``awaiting`` (filed,
        no outcome yet) and ``median_fix_seconds``; all counted in the database."""
        out: dict[str, dict[str, Any]] = {}

        def put(rows: list[Row]) -> None:
            for r in rows:
                entry = out.setdefault(r["rule"], {})
                entry.update({k: v for k, v in r.items() if k != "rule"})

        put(
            self.store.query(
                "SELECT rule, COUNT(*) AS findings FROM reviewer_findings GROUP BY rule"
            )
        )
        put(
            self.store.query(
                """SELECT rule, COUNT(*) AS proposals,
                       SUM(CASE WHEN outcome = 'fixed' THEN 1 ELSE 0 END) AS fixed,
                       SUM(CASE WHEN outcome = 'not-fixed' THEN 1 ELSE 0 END) AS not_fixed,
                       SUM(CASE WHEN outcome = 'regressed' THEN 1 ELSE 0 END) AS regressed,
                       SUM(CASE WHEN outcome = 'abandoned' THEN 1 ELSE 0 END) AS abandoned,
                       SUM(CASE WHEN task_id IS NOT NULL AND outcome IS NULL THEN 1 ELSE 0 END)
                           AS awaiting
                   FROM reviewer_proposals GROUP BY rule"""
            )
        )
        put(
            self.store.query(
                """SELECT rule,
                       SUM(CASE WHEN action = 'proposal.approved' AND actor <> 'reviewer'
                           THEN 1 ELSE 0 END) AS approvals,
                       SUM(CASE WHEN action = 'proposal.approved' AND actor = 'reviewer'
                           THEN 1 ELSE 0 END) AS auto,
                       SUM(CASE WHEN action = 'proposal.rejected' THEN 1 ELSE 0 END) AS rejections
                   FROM reviewer_audit
                   WHERE action IN ('proposal.approved', 'proposal.rejected')
                   GROUP BY rule"""
            )
        )
        put(self._median_fix_seconds())
        return out

    def _median_fix_seconds(self) -> list[Row]:
        """Per rule, the median time from a proposal to the end of its task, over the
        proposals whose task fixed the finding (``fixed`` or later ``regressed``)."""
        dialect = getattr(self.store, "dialect", SQLITE)
        secs = f"{dialect.epoch('task_ended_at')} - {dialect.epoch('created_at')}"
        return self.store.query(
            f"""WITH d AS (
                    SELECT rule, {secs} AS secs FROM reviewer_proposals
                    WHERE outcome IN ('fixed', 'regressed') AND task_ended_at IS NOT NULL),
                r AS (
                    SELECT rule, secs,
                        ROW_NUMBER() OVER (PARTITION BY rule ORDER BY secs) AS k,
                        COUNT(*) OVER (PARTITION BY rule) AS n
                    FROM d)
                SELECT rule, AVG(secs) AS median_fix_seconds FROM r
                WHERE k = (n + 1) / 2 OR k = (n + 2) / 2 GROUP BY rule"""
        )

    def rejection_reasons(self, per_rule: int = 5) -> dict[str, list[dict[str, Any]]]:
        """The commonest reasons people gave for rejecting each rule's proposals."""
        rows = self.store.query(
            """SELECT rule, reason, n FROM (
                   SELECT rule, COALESCE(reason, '') AS reason, COUNT(*) AS n,
                       ROW_NUMBER() OVER (PARTITION BY rule
                                          ORDER BY COUNT(*) DESC, COALESCE(reason, '')) AS k
                   FROM reviewer_audit WHERE action = 'proposal.rejected'
                   GROUP BY rule, COALESCE(reason, '')) x
               WHERE k <= :k ORDER BY rule, n DESC, reason""",
            {"k": per_rule},
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            out.setdefault(r["rule"], []).append({"reason": r["reason"] or None, "n": int(r["n"])})
        return out

    def fingerprints_with_outcome(
        self, rule: str, outcomes: tuple[str, ...], rejected: bool = True
    ) -> set[str]:
        """The fingerprints of a rule's proposals that were rejected or had one of
        ``outcomes`` (what a tuning hint would want to quiet)."""
        marks = ", ".join(f":o{i}" for i in range(len(outcomes))) or "NULL"
        rows = self.store.query(
            f"""SELECT DISTINCT fingerprint FROM reviewer_proposals
                WHERE rule = :rule AND (outcome IN ({marks})
                    {"OR state = 'rejected'" if rejected else ""})""",
            {"rule": rule, **{f"o{i}": o for i, o in enumerate(outcomes)}},
        )
        return {r["fingerprint"] for r in rows}

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
