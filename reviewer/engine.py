"""The review cycle: run the rules, keep findings, propose and schedule tasks.

One cycle, as of an instant ``now``:

1. Every enabled rule's ``check()`` runs against a read-only view of the store
   as of ``now``. A rule that raises is recorded on the run; the others go on,
   and the findings of the failed rule are left exactly as they were.
2. Findings are keyed by fingerprint (Sentry's grouping): a new print opens a
   finding, a known one updates it, a resolved one that fires again reopens as
   a regression. An open finding its rule no longer reports resolves after
   ``resolve_after_cycles`` clean cycles, and so does its pending proposal.
3. A firing finding that is not silenced, whose rule's approval is not ``off``,
   and that has no proposal speaking for it (none pending/approved/scheduled,
   no rejection still in its cooldown) becomes a candidate proposal. At most
   ``max_new_proposals_per_cycle`` are created per cycle, highest severity
   first; the rest are held back and said so, and come next cycle.
   Before that, ``reviewer.incidents`` groups open findings that share a cause
   into one incident with one proposal and holds its members back, and folds
   one rule's flood (more than ``burst_limit``) into one summary proposal.
4. ``auto`` proposals, and approved ones not yet in the backlog, are scheduled:
   the backlog task and the proposal's ``scheduled`` state are written in one
   transaction under a unique task id, so the task exists exactly once. A
   finding that carries a control (``Finding.control``) has it applied in the
   same transaction; controls that expired, or whose finding stayed clear for
   ``control_lift_after_cycles``, are lifted (``reviewer.controls``).

All of step 2-4 is one write transaction; ``dry_run`` rolls it back, and runs
against the store's ``dry_run_copy()`` so it never needs the write lock. A
``now`` before the last recorded review (an explicit one, or a wall clock that
stepped back) makes the cycle a dry run, with a note and a log line.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from reviewer import changes, incidents
from reviewer.config import Config
from reviewer.controls import apply_for_proposal, lift_due
from reviewer.failpoint import failpoint, pausepoint
from reviewer.outcomes import check_breakers, effective_approval, judge_outcomes
from rules import REGISTRY, Finding
from store import Approval, Proposal, ProposalState, Severity
from store.base import Store
from store.models import REVIEWER_ACTOR
from store.secrets import redact
from store.state import InvalidTransition, ReviewerState, silence_for
from store.timeutil import fmt_duration, fmt_ts, parse_ts, utcnow

if TYPE_CHECKING:
    from reviewer.render import Renderer

log = logging.getLogger("reviewer.engine")

ACTOR = REVIEWER_ACTOR
_DONE_TASK_STATES = ("completed", "cancelled", "failed")


class _Rollback(Exception):
    """Raised inside the state transaction of a dry run to discard it."""


class CycleCancelled(Exception):
    """Raised between rules when ``Engine.cancel`` is set: the cycle stops, nothing is saved."""


@dataclass
class ReviewResult:
    """What one review cycle saw and did."""

    run_id: int | None
    now: str
    status: str = "ok"
    findings: list[dict[str, Any]] = field(default_factory=list)
    proposals: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    held_back: int = 0
    resolved: list[str] = field(default_factory=list)
    duration_ms: int = 0
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)
    # Pipeline records dated after the present (see Engine._future_records).
    future_records: int = 0
    # Controls applied or lifted this cycle, each with "change": "applied" | "lifted".
    controls: list[dict[str, Any]] = field(default_factory=list)
    # Outcomes of filed tasks that changed this cycle (reviewer/outcomes.py).
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    # Pipeline rows the rules skipped: a timestamp or number that does not parse.
    skipped_records: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "now": self.now,
            "status": self.status,
            "dry_run": self.dry_run,
            "findings": self.findings,
            "proposals": self.proposals,
            "errors": self.errors,
            "held_back": self.held_back,
            "resolved": self.resolved,
            "notes": self.notes,
            "future_records": self.future_records,
            "controls": self.controls,
            "outcomes": self.outcomes,
            "skipped_records": self.skipped_records,
            "duration_ms": self.duration_ms,
        }


def task_id_for(proposal: Proposal) -> str:
    """The backlog id of a proposal's task: unique, so the task is filed once."""
    return f"reviewer-{proposal.id}"


def _log_failure(message: str, run_id: int | None, exc: BaseException) -> None:
    """A store error says what happened and what to do: no traceback for it."""
    from store import StoreError

    if isinstance(exc, StoreError):
        log.error(message + ": %s", run_id, exc)
    else:
        log.exception(message, run_id)


def _decidable(proposal: Proposal, to: str) -> None:
    """Refuse a decision that conflicts with the proposal's state (a 409 / exit 1)."""
    if proposal.state in (ProposalState.pending, ProposalState.approved):
        return
    by = f" by {proposal.decided_by}" if proposal.decided_by else ""
    raise InvalidTransition(
        f"proposal {proposal.id} is already {proposal.state.value}{by}; it cannot be {to} "
        "(only a pending or approved proposal can be decided)"
    )


class Engine:
    """Runs review cycles and proposal decisions against one store."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        renderer: Renderer | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.config = config
        self.store = store
        self.state = ReviewerState(store)
        self._renderer = renderer
        self.clock = clock
        # Set (by the daemon, on SIGTERM) to stop a running cycle at the next rule
        # boundary: the run is recorded as cancelled and no finding of it is written.
        self.cancel = threading.Event()
        self.cancel_why = "the reviewer is stopping"

    @property
    def renderer(self) -> Renderer:
        """The proposal templates, loaded on first use (jinja2 is not needed to read)."""
        if self._renderer is None:
            from reviewer.render import Renderer

            self._renderer = Renderer(self.config.resolve(self.config.reviewer.templates_dir))
        return self._renderer

    # -- the cycle --------------------------------------------------------------
    def review(
        self,
        now: datetime | None = None,
        *,
        dry_run: bool = False,
        trigger: str = "once",
        tick: str | None = None,
        runner: str | None = None,
    ) -> ReviewResult:
        """Run one review cycle as of ``now`` (default: the clock).

        ``tick`` and ``runner`` are recorded with the run: the scheduled instant a
        replica leads, and which process it is (``reviewer.daemon``)."""
        started = time.monotonic()
        at = parse_ts(now) if now is not None else self.clock()
        at_ts = fmt_ts(at)
        past_note = None
        if not dry_run:
            # A look at the past never rewrites the present: before the last recorded
            # run (an explicit --now, or a wall clock that stepped back), the cycle is
            # a dry run and says so.
            latest = self.state.latest_now()
            if latest is not None and at_ts < latest:
                dry_run = True
                what = "--now" if now is not None else "the clock's now"
                past_note = (
                    f"{what} {at_ts} is before the last recorded review ({latest}): "
                    "reviewed read-only, nothing was written"
                )
        if past_note:
            log.warning(past_note)
        if not dry_run:
            return self._cycle(
                at, trigger, past_note, started, dry_run=False, tick=tick, runner=runner
            )
        # A dry run takes no write lock: it runs against a throwaway copy (or inside a
        # transaction that skips the lock), and what it writes there is rolled back.
        with self.store.dry_run_copy() as scratch:
            engine = self
            if scratch is not self.store:
                engine = Engine(self.config, scratch, renderer=self.renderer, clock=self.clock)
                engine.cancel = self.cancel
            return engine._cycle(at, trigger, past_note, started, dry_run=True)

    def _cycle(
        self,
        at: datetime,
        trigger: str,
        past_note: str | None,
        started: float,
        *,
        dry_run: bool,
        tick: str | None = None,
        runner: str | None = None,
    ) -> ReviewResult:
        at_ts = fmt_ts(at)
        run_id = None
        if not dry_run:
            with self.store.transaction():
                run_id = self.state.start_run(
                    fmt_ts(self.clock()), at_ts, trigger, tick=tick, runner=runner
                )
        result = ReviewResult(run_id=run_id, now=at_ts, dry_run=dry_run)
        if past_note:
            result.notes.append(past_note)

        finished = False
        try:
            findings, failed_rules = self.run_rules(at, result)
            self._check_cancel("saving")
        except CycleCancelled as exc:
            log.warning("review cycle %s cancelled %s", run_id, exc)
            result.status = "cancelled"
            result.notes.append(f"cancelled {exc}: {self.cancel_why}; nothing was saved")
        except Exception as exc:  # the store could not be read: nothing to judge this cycle
            _log_failure("review cycle %s could not read the store", run_id, exc)
            result.status = "failed"
            result.errors.append({"rule": None, "stage": "read", "error": _describe(exc)})
        else:
            # Counted outside the saving transaction: a failed count must not abort it.
            result.future_records = self._future_records(result)
            result.skipped_records = self._skipped_records(result)
            try:
                with self.store.transaction():
                    self._apply(findings, failed_rules, at, result)
                    if dry_run:
                        raise _Rollback
                    # The run's counts commit with its findings and proposals, or not at all.
                    self._finish(run_id, result, started)
                    finished = True
            except _Rollback:
                pass
            except Exception as exc:  # the cycle failed where it failed; the next one is on time
                _log_failure("review cycle %s failed while saving its results", run_id, exc)
                result.status = "failed"
                result.errors.append({"rule": None, "stage": "save", "error": _describe(exc)})
        if run_id is not None and not finished:
            with self.store.transaction():
                self._finish(run_id, result, started)
        if result.status == "ok" and result.errors:
            result.status = "partial"
        result.duration_ms = int((time.monotonic() - started) * 1000)
        if run_id is not None and result.status != "cancelled":
            # After the commit; bounded by [notify] max_seconds and never raises.
            from reviewer.notify import after_cycle

            after_cycle(self.config, self.state, result, clock=self.clock, stop=self.cancel)
        log.info(
            "review done",
            extra={
                "run_id": run_id,
                "now": at_ts,
                "status": result.status,
                "findings": len(result.findings),
                "proposals": len(result.proposals),
                "held_back": result.held_back,
                "errors": len(result.errors),
                "duration_ms": result.duration_ms,
            },
        )
        return result

    def _finish(self, run_id: int | None, result: ReviewResult, started: float) -> None:
        if result.status == "ok" and result.errors:
            result.status = "partial"
        result.duration_ms = int((time.monotonic() - started) * 1000)
        if run_id is None:
            return
        self.state.finish_run(
            run_id,
            status=result.status,
            finished_at=fmt_ts(self.clock()),
            findings=len(result.findings),
            new_proposals=sum(1 for p in result.proposals if p.get("change") == "created"),
            held_back=result.held_back,
            resolved=len(result.resolved),
            duration_ms=result.duration_ms,
            errors=result.errors,
            future_records=result.future_records,
            skipped_records=result.skipped_records,
        )

    def _future_records(self, result: ReviewResult) -> int:
        """Records dated after the present (beyond 5 minutes): a note on the run.

        Counted against the wall clock, not the run's ``now``, so a review of a
        past instant does not count the records that simply came later. A store
        that cannot answer counts none; the run's own errors say why.
        """
        after = fmt_ts(max(self.clock(), parse_ts(result.now)) + timedelta(minutes=5))
        try:
            future = self.state.count_after(after)
        except Exception as exc:
            log.warning("could not count records dated after now: %s", redact(str(exc)))
            return 0
        if future:
            note = (
                f"the store holds {future} record(s) dated after {after}: stored, but no "
                "rule sees them until that time; check the pipeline's clock and time zone"
            )
            result.notes.append(note)
            log.warning(note)
        return future

    def _skipped_records(self, result: ReviewResult) -> int:
        """Pipeline rows no rule could read (written by direct SQL): a note on the run."""
        try:
            skipped = self.state.count_unreadable()
        except Exception as exc:
            log.warning("could not count unreadable records: %s", redact(str(exc)))
            return 0
        if skipped:
            note = (
                f"skipped {skipped} pipeline record(s) whose timestamp or number does not "
                "parse (written by direct SQL; see the README's 'Hostile input' for the "
                "forms a writer may use)"
            )
            result.notes.append(note)
            log.warning(note)
        return skipped

    def run_rules(self, at: datetime, result: ReviewResult) -> tuple[list[Finding], set[str]]:
        """Every enabled rule's findings as of ``at`` (deduplicated by fingerprint) and the
        rules that failed; records nothing but the failures in ``result.errors``."""
        view = self.store.view(at)
        findings: dict[str, Finding] = {}
        failed: set[str] = set()
        for rule_cfg in self.config.enabled_rules():
            self._check_cancel(f"before rule {rule_cfg.id}")
            module = REGISTRY[rule_cfg.id]
            t0 = time.monotonic()
            try:
                produced = [
                    f.with_identity(rule_cfg.id, rule_cfg.settings.severity)
                    for f in module.check(rule_cfg.options, view)
                ]
            except Exception as exc:
                failed.add(rule_cfg.id)
                detail = redact("".join(traceback.format_exception_only(type(exc), exc)).strip())
                log.error("rule %s failed: %s", rule_cfg.id, detail)
                result.errors.append(
                    {"rule": rule_cfg.id, "stage": "check", "error": detail, "where": _where(exc)}
                )
                continue
            for f in produced:
                findings.setdefault(f.fingerprint, f)
            log.debug(
                "rule %s: %d findings in %.0f ms",
                rule_cfg.id,
                len(produced),
                (time.monotonic() - t0) * 1000,
            )
        return list(findings.values()), failed

    def _check_cancel(self, where: str) -> None:
        pausepoint("cycle.step")
        if self.cancel.is_set():
            raise CycleCancelled(where)

    def _apply(
        self, findings: list[Finding], failed_rules: set[str], at: datetime, result: ReviewResult
    ) -> None:
        at_ts = fmt_ts(at)
        silences = self.state.silences(at_ts)
        prints = [f.fingerprint for f in findings]
        known = self.state.findings_by_print(prints)
        regressed: set[str] = set()

        for f in findings:
            silence = silence_for(silences, f.rule, f.subject)
            if silence is not None:
                f.silenced_by = silence.id
            row = known.get(f.fingerprint)
            was_silenced = row["silenced_by"] if row else None
            status = self._record_finding(f, row, at_ts, result.run_id)
            if silence is not None and was_silenced != silence.id:
                self.state.audit(
                    at_ts,
                    silence.created_by,
                    "finding.silenced",
                    fingerprint=f.fingerprint,
                    rule=f.rule,
                    subject=f.subject,
                    reason=silence.comment,
                    details={"silence_id": silence.id, "until": silence.until},
                )
            if status == "regressed":
                regressed.add(f.fingerprint)
            item = f.public()
            item["status"] = status
            item["first_seen"] = row["first_seen"] if row else at_ts
            result.findings.append(item)

        self._resolve_cleared(set(prints), failed_rules, at_ts, result)
        for control in lift_due(self.state, self.config, set(prints), failed_rules, at_ts):
            result.controls.append({**control.public(at_ts), "change": "lifted"})
        result.outcomes = judge_outcomes(self.state, self.config, at, result.run_id, failed_rules)
        tripped = check_breakers(self.state, self.config, at, result.notes)
        first_seen = {fp: row["first_seen"] for fp, row in known.items()}
        inhibited = incidents.review(self, at, result)  # incidents and bursts hold these back
        self._propose(findings, regressed, first_seen, at, result, tripped, inhibited)
        self._schedule_approved(at_ts, result)

    def _record_finding(
        self, f: Finding, row: dict[str, Any] | None, at: str, run_id: int | None
    ) -> str:
        assert f.severity is not None
        payload = json.dumps(f.model_dump(mode="json"), default=str)
        params = {
            "fp": f.fingerprint,
            "rule": f.rule,
            "kind": f.kind,
            "subject": f.subject,
            "severity": f.severity.value,
            "summary": f.summary,
            "payload": payload,
            "at": at,
            "run": run_id,
            "silenced_by": f.silenced_by,
        }
        if row is None:
            self.state.open_finding(params)
            self.state.audit(
                at,
                ACTOR,
                "finding.opened",
                fingerprint=f.fingerprint,
                rule=f.rule,
                subject=f.subject,
                reason=f.summary,
            )
            return "new"
        reopened = row["state"] != "open"
        self.state.refresh_finding(params, reopened=reopened)
        if reopened:
            self.state.audit(
                at,
                ACTOR,
                "finding.regressed",
                fingerprint=f.fingerprint,
                rule=f.rule,
                subject=f.subject,
                reason=f"fired again after it resolved at {row['resolved_at']}",
            )
            return "regressed"
        return "ongoing"

    def _resolve_cleared(
        self, firing: set[str], failed_rules: set[str], at: str, result: ReviewResult
    ) -> None:
        needed = self.config.reviewer.resolve_after_cycles
        for fp, row in self.state.open_findings().items():
            if fp in firing or row["rule"] in failed_rules:
                continue
            streak = row["clear_streak"] + 1
            if streak < needed:
                self.state.set_clear_streak(fp, streak)
                continue
            self.state.resolve_finding(fp, streak, at)
            reason = f"condition cleared for {streak} consecutive cycles"
            self.state.audit(
                at,
                ACTOR,
                "finding.resolved",
                fingerprint=fp,
                rule=row["rule"],
                subject=row["subject"],
                reason=reason,
            )
            result.resolved.append(fp)
            self.resolve_pending(fp, at, f"finding cleared before anyone acted ({reason})", result)

    def resolve_pending(self, fingerprint: str, at: str, reason: str, result: ReviewResult) -> None:
        """The pending proposal of ``fingerprint`` (if any) resolves: nobody has to act."""
        active = self.state.active_proposal(fingerprint)
        if active is not None and active.state == ProposalState.pending:
            done = self.state.transition(
                active,
                ProposalState.resolved,
                at=at,
                actor=ACTOR,
                reason=reason,
                allowed_from=(ProposalState.pending,),
            )
            result.proposals.append({**done.public(), "change": "resolved"})

    def _propose(
        self,
        findings: list[Finding],
        regressed: set[str],
        first_seen: dict[str, str],
        at: datetime,
        result: ReviewResult,
        tripped: frozenset[str] = frozenset(),
        inhibited: Collection[str] = (),
    ) -> None:
        at_ts = fmt_ts(at)
        rules = self.config.rules
        live = [
            f
            for f in findings
            if f.silenced_by is None
            and rules[f.rule].settings.approval != Approval.off
            and f.fingerprint not in inhibited
        ]
        latest = self.state.latest_proposals([f.fingerprint for f in live])
        cooling = self.state.in_cooldown([f.fingerprint for f in live], at_ts)
        candidates: list[tuple[Finding, Proposal | None, str]] = []
        for f in live:
            row = latest.get(f.fingerprint)
            prev = Proposal.model_validate(row) if row else None
            if prev is None or prev.state in (ProposalState.resolved, ProposalState.superseded):
                candidates.append(
                    (f, prev if f.fingerprint in regressed else None, "it resolved and fired again")
                )
            elif prev.state == ProposalState.rejected:
                if f.fingerprint not in cooling:
                    candidates.append((f, None, ""))
            elif prev.state == ProposalState.pending:
                assert f.severity is not None and prev.severity is not None
                if f.severity.rank > prev.severity.rank:
                    candidates.append(
                        (f, prev, f"severity rose from {prev.severity.value} to {f.severity.value}")
                    )
                else:  # keep the pending proposal's evidence current
                    title, body = self.renderer.render(f, now=at, run_id=result.run_id)
                    if body != prev.body or title != prev.title:
                        self.state.update_proposal_body(prev, title, body, at_ts)
            elif prev.state == ProposalState.scheduled:
                note = self._regression_note(prev, f.fingerprint in regressed, at)
                if note:
                    candidates.append((f, prev, note))
            # approved: scheduled below

        # Most severe first; among equals the longest-standing, so held-back ones come first next.
        candidates.sort(
            key=lambda c: (
                -(c[0].severity or Severity.info).rank,
                first_seen.get(c[0].fingerprint, fmt_ts(at)),
                c[0].fingerprint,
            )
        )
        candidates = incidents.bursts(self, candidates, at, result)
        cap = self.config.reviewer.max_new_proposals_per_cycle
        for f, prev, note in candidates[:cap]:
            approval = effective_approval(self.config, f.rule, tripped)
            proposal = self._create(f, prev, note, at, result, approval)
            if approval == Approval.auto:
                proposal = self._schedule(proposal, at_ts, ACTOR, "approval = auto", result)
                result.proposals[-1] = {**proposal.public(), "change": "created"}
        held = candidates[cap:]
        if held:
            result.held_back = len(held)
            result.notes.append(
                f"held back {len(held)} new proposal(s): at most {cap} are made per cycle "
                "([reviewer] max_new_proposals_per_cycle); they come next cycle, "
                "highest severity first"
            )

    def _regression_note(self, prev: Proposal, regressed: bool, at: datetime) -> str:
        """Why a finding whose task was filed needs a new one, or '' if it does not."""
        task = self.store.get_task(prev.task_id) if prev.task_id else None
        if task is None or task.get("status") not in _DONE_TASK_STATES:
            return ""  # its task is still open: it speaks for the finding
        if regressed:
            return f"it resolved after task {prev.task_id} was {task['status']}, then fired again"
        done_at = task.get("finished_at") or task.get("updated_at")
        grace = self.config.reviewer.reopen_after_done
        if done_at and at - parse_ts(done_at) >= grace:
            return (
                f"it still fires {fmt_duration(at - parse_ts(done_at))} after task "
                f"{prev.task_id} was {task['status']}"
            )
        return ""

    def _create(
        self,
        f: Finding,
        prev: Proposal | None,
        note: str,
        at: datetime,
        result: ReviewResult,
        approval: Approval,
    ) -> Proposal:
        at_ts = fmt_ts(at)
        if prev is not None and prev.state in (ProposalState.pending, ProposalState.scheduled):
            superseded = self.state.transition(
                prev,
                ProposalState.superseded,
                at=at_ts,
                actor=ACTOR,
                reason=note,
                allowed_from=(ProposalState.pending, ProposalState.scheduled),
            )
            result.proposals.append({**superseded.public(), "change": "superseded"})
        is_regression = prev is not None and "severity rose" not in note
        title, body = self.renderer.render(
            f,
            now=at,
            run_id=result.run_id,
            regression=prev if is_regression else None,
            regression_note=note,
        )
        assert f.severity is not None
        proposal = self.state.create_proposal(
            fingerprint=f.fingerprint,
            rule=f.rule,
            kind=f.kind,
            subject=f.subject,
            severity=f.severity,
            title=title,
            body=body,
            approval=approval,
            at=at_ts,
            run_id=result.run_id,
            regression_of=prev.id if is_regression and prev else None,
        )
        result.proposals.append({**proposal.public(), "change": "created"})
        return proposal

    def _schedule_approved(self, at: str, result: ReviewResult) -> None:
        """Approved proposals whose task is not yet filed (an earlier attempt failed)."""
        for proposal in self.state.proposals(state=ProposalState.approved.value):
            done = self._schedule(proposal, at, ACTOR, "retry: approved but not yet filed", result)
            result.proposals.append({**done.public(), "change": "scheduled"})

    # -- decisions ------------------------------------------------------------------
    def approve(self, proposal_id: int, *, by: str, reason: str | None = None) -> Proposal:
        """Approve a proposal and file its backlog task; running it twice is harmless."""
        at = fmt_ts(self.clock())
        with self.store.transaction():
            proposal = self.state.proposal(proposal_id)
            if proposal.state == ProposalState.scheduled:
                return proposal
            _decidable(proposal, "approved")
            # Pending → approved → scheduled, or an approved one whose filing failed earlier.
            return self._schedule(proposal, at, by, reason or "approved")

    def reject(self, proposal_id: int, *, by: str, reason: str | None = None) -> Proposal:
        """Reject a proposal; its fingerprint is not proposed again within the cooldown.

        Like ``approve``, running it twice is harmless: a rejected proposal is
        returned as it is (the first decision and its cooldown stand)."""
        at = self.clock()
        until = fmt_ts(at + self.config.reviewer.reject_cooldown)
        with self.store.transaction():
            proposal = self.state.proposal(proposal_id)
            if proposal.state == ProposalState.rejected:
                return proposal
            _decidable(proposal, "rejected")
            return self.state.transition(
                proposal,
                ProposalState.rejected,
                at=fmt_ts(at),
                actor=by,
                reason=reason,
                allowed_from=(ProposalState.pending, ProposalState.approved),
                cooldown_until=until,
                decided=True,
            )

    def _schedule(
        self,
        proposal: Proposal,
        at: str,
        actor: str,
        reason: str,
        result: ReviewResult | None = None,
    ) -> Proposal:
        """File the proposal's backlog task, apply the control its finding asks for (if
        any) and mark it scheduled, in one transaction."""
        task_id = task_id_for(proposal)
        with self.store.transaction():
            if proposal.state == ProposalState.pending:
                proposal = self.state.transition(
                    proposal,
                    ProposalState.approved,
                    at=at,
                    actor=actor,
                    reason=reason,
                    allowed_from=(ProposalState.pending,),
                    decided=True,
                )
            changed = changes.apply_declared(self, proposal, at, actor)
            if changed is not None:  # the approval changed the backlog; no task to file
                return self.state.transition(
                    proposal,
                    ProposalState.scheduled,
                    at=at,
                    actor=actor,
                    reason=f"{reason}; applied {changes.declared(proposal)} to task {changed}",
                    allowed_from=(ProposalState.approved,),
                    task_id=changed,
                )
            finding = self.state.findings_by_print([proposal.fingerprint]).get(proposal.fingerprint)
            if finding:
                payload = json.loads(finding["payload"])
            else:  # an incident's or a burst's proposal
                payload = incidents.payload_for(self, proposal.fingerprint) or {}
            record = self._task_record(proposal, task_id, at, payload, finding is not None)
            inserted = self.store.insert_task_once(record)
            if not inserted:
                existing = self.store.get_task(task_id) or {}
                extra = json.loads(existing.get("extra") or "{}")
                if existing.get("source") != "reviewer" or extra.get("proposal_id") != proposal.id:
                    raise InvalidTransition(
                        f"backlog already has a task {task_id} that the reviewer did not file "
                        f"for proposal {proposal.id}; rename that task or clear it"
                    )
            failpoint("schedule.after_insert")
            if self.config.reviewer.label_subject_tasks and self.store.get_task(proposal.subject):
                self.store.touch_task_labels(proposal.subject, [f"reviewer:{proposal.rule}"], at)
            control = apply_for_proposal(
                self.state, self.config, proposal, payload, at=at, actor=actor, why=reason
            )
            if control is not None and result is not None:
                result.controls.append({**control.public(at), "change": "applied"})
            return self.state.transition(
                proposal,
                ProposalState.scheduled,
                at=at,
                actor=actor,
                reason=reason,
                allowed_from=(ProposalState.approved,),
                task_id=task_id,
            )

    def _task_record(
        self,
        proposal: Proposal,
        task_id: str,
        at: str,
        payload: dict[str, Any],
        own_finding: bool = True,
    ) -> dict[str, Any]:
        return {
            "id": task_id,
            "title": proposal.title,
            "description": proposal.body,
            "task_type": payload.get("task_type") or "review",
            "phase": None,
            "status": "pending",
            "priority": proposal.severity.priority,
            "created_at": at,
            "updated_at": at,
            "attempts": 0,
            "depends_on": json.dumps([]),
            "spec": proposal.subject if own_finding and _subject_is_spec(proposal.rule) else None,
            "goal_id": payload.get("evidence", {}).get("goal_id") if payload else None,
            "labels": json.dumps(["reviewer", f"rule:{proposal.rule}", f"kind:{proposal.kind}"]),
            "source": "reviewer",
            "extra": json.dumps(
                {
                    "proposal_id": proposal.id,
                    "fingerprint": proposal.fingerprint,
                    "subject": proposal.subject,
                    "related": payload.get("related", []),
                    "remedy": payload.get("remedy", "alert"),
                }
            ),
        }


def _subject_is_spec(rule_id: str) -> bool:
    """Whether a rule's findings are about a spec (their subject is its path)."""
    return bool(getattr(REGISTRY.get(rule_id), "SUBJECT_IS_SPEC", False))


def _describe(exc: BaseException) -> str:
    """An error for the run record: the record is shown by ``runs``, ``/healthz`` and
    ``--json``, so secrets in the message are masked before it is stored."""
    return redact(f"{type(exc).__name__}: {exc}")


def _where(exc: BaseException) -> str:
    """file:line of the innermost frame of an exception, for run error reports."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return ""
    return f"{last.tb_frame.f_code.co_filename}:{last.tb_lineno}"


__all__ = ["Engine", "ReviewResult", "task_id_for"]
