"""From symptoms to causes: incidents and bursts.

One broken executor shows in several rules at once: an error-rate breaker on
``executor:NAME``, tasks stuck on it, repeated failures, a timeout pattern.
Filing five tasks for one cause is noise, so the engine groups them, the way
Alertmanager groups and inhibits alerts:

* Every open finding gets **labels**: ``rule``, ``kind``, ``severity``,
  ``subject``; ``scope`` and ``<scope>=NAME`` when its subject is a scope
  (``executor:runner-c`` gives ``scope=executor``, ``executor=runner-c``); the
  string values of the evidence keys named in ``evidence_labels`` (a stuck
  task's ``executor``, ``model``, ``task_type``, ``phase``); and
  ``symptom=true`` when its rule module lists the kind in its optional
  ``SYMPTOM_KINDS`` (findings that an operational cause can produce).
* An **inhibit rule** says which findings (``source_matchers``) explain which
  others (``target_matchers``) when the ``equal`` labels have one value in
  both. Matchers are ``label=value``, ``label!=value``, ``label=~regex``,
  ``label!~regex``, and ``severity>=LEVEL`` / ``severity<=LEVEL``.
* A source with its targets forms an **incident** keyed by the source's
  ``equal`` labels that are in ``group_by`` (``executor:runner-c``); the
  incident opens when it holds at least ``min_findings`` findings. Its
  likeliest cause is its most severe source (then the one explaining most).
  A finding belongs to one incident at most, the most severe first.
* An open incident files **one** proposal (a ``heal`` task) listing every
  member with its evidence; the members' own proposals are **inhibited**:
  pending ones are superseded with a pointer to the incident and none is
  made while it is open. It holds while its cause is open (even when other
  members resolved); when the cause resolves (after ``resolve_after_cycles``
  like any finding), it resolves, its pending proposal resolves, and the
  members still open are judged again on their own.

A **burst** is one rule about to file more than ``burst_limit`` proposals in
one cycle (``[reviewer] burst_limit``, or ``burst_limit`` in the rule's own
table): one summary proposal ("something is wrong with ...") is filed instead,
its findings wait behind it as an incident's do, and it resolves when none of
them is open.

Both are kept in ``reviewer_incidents`` and every change is audited
(``incident.opened``, ``incident.grew``, ``incident.resolved``, ``burst.*``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rules import REGISTRY, Finding, fingerprint
from store import Approval, ProposalState, Severity
from store.base import Row
from store.models import REVIEWER_ACTOR
from store.timeutil import fmt_ts

if TYPE_CHECKING:
    from reviewer.engine import Engine, ReviewResult
    from store.state import ReviewerState

ACTOR = REVIEWER_ACTOR
_SCOPED = re.compile(r"^([a-z][a-z_]*):(?!:)(.+)$")
_MATCHER = re.compile(r"^\s*([a-z][a-z_]*)\s*(=~|!~|!=|>=|<=|=)\s*(.*?)\s*$")
_MAX_LISTED = 30


class Matcher(BaseModel):
    """One parsed ``label OP value`` matcher."""

    label: str
    op: Literal["=", "!=", "=~", "!~", ">=", "<="]
    value: str

    @classmethod
    def parse(cls, text: str) -> Matcher:
        m = _MATCHER.match(text)
        if m is None:
            raise ValueError(
                f"matcher {text!r} is not 'label=value', 'label!=value', 'label=~regex', "
                "'label!~regex' or 'severity>=LEVEL'"
            )
        label, op, value = m.group(1), m.group(2), m.group(3).strip("\"'")
        if op in (">=", "<=") and label != "severity":
            raise ValueError(f"matcher {text!r}: >= and <= compare severities only")
        if op in (">=", "<="):
            try:
                Severity(value)
            except ValueError:
                levels = ", ".join(s.value for s in Severity)
                raise ValueError(f"matcher {text!r}: {value!r} is not one of {levels}") from None
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"matcher {text!r}: bad regular expression ({exc})") from None
        return cls.model_validate({"label": label, "op": op, "value": value})

    def matches(self, labels: dict[str, str]) -> bool:
        have = labels.get(self.label, "")  # a missing label is the empty string
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        if self.op == "=~":
            return re.fullmatch(self.value, have) is not None
        if self.op == "!~":
            return re.fullmatch(self.value, have) is None
        if not have:
            return False
        rank, bound = Severity(have).rank, Severity(self.value).rank
        return rank >= bound if self.op == ">=" else rank <= bound


class InhibitRule(BaseModel):
    """Findings matching ``source_matchers`` explain those matching ``target_matchers``
    whose ``equal`` labels have the same values."""

    model_config = ConfigDict(extra="forbid")

    source_matchers: list[str]
    target_matchers: list[str] = Field(default_factory=list)
    equal: list[str] = Field(min_length=1)

    @field_validator("source_matchers", "target_matchers")
    @classmethod
    def _parse(cls, value: list[str]) -> list[str]:
        for text in value:
            Matcher.parse(text)
        return value

    def sources(self) -> list[Matcher]:
        return [Matcher.parse(t) for t in self.source_matchers]

    def targets(self) -> list[Matcher]:
        return [Matcher.parse(t) for t in self.target_matchers]


_SCOPES = ("executor", "model", "task_type", "phase")


def _default_rules() -> list[InhibitRule]:
    return [
        InhibitRule(
            source_matchers=[f"scope={s}", "severity>=error"],
            target_matchers=["symptom=true"],
            equal=[s],
        )
        for s in _SCOPES
    ]


class IncidentSettings(BaseModel):
    """The ``[incidents]`` table."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    group_by: list[str] = Field(default_factory=lambda: list(_SCOPES))
    evidence_labels: list[str] = Field(default_factory=lambda: list(_SCOPES))
    min_findings: int = Field(default=2, ge=2)
    approval: Approval = Approval.manual
    inhibit_rules: list[InhibitRule] = Field(default_factory=_default_rules)


# -- labels -----------------------------------------------------------------------
def labels_of(payload: dict[str, Any], evidence_labels: list[str]) -> dict[str, str]:
    """A finding's labels (see the module docstring), from its stored payload."""
    labels = {
        "rule": str(payload.get("rule", "")),
        "kind": str(payload.get("kind", "")),
        "severity": str(payload.get("severity") or ""),
        "subject": str(payload.get("subject", "")),
    }
    evidence = payload.get("evidence") or {}
    for key in evidence_labels:
        value = evidence.get(key)
        if isinstance(value, str) and value:
            labels[key] = value
    m = _SCOPED.match(labels["subject"])
    if m is not None:
        labels["scope"] = m.group(1)
        labels[m.group(1)] = m.group(2)  # the subject wins over the evidence
    module = REGISTRY.get(labels["rule"])
    if labels["kind"] in getattr(module, "SYMPTOM_KINDS", ()):
        labels["symptom"] = "true"
    return labels


@dataclass
class _Group:
    key: str
    causes: set[str] = field(default_factory=set)
    members: set[str] = field(default_factory=set)
    explains: Counter[str] = field(default_factory=Counter)


def group(
    settings: IncidentSettings, open_rows: dict[str, Row]
) -> list[tuple[str, str, list[str]]]:
    """The incidents the open findings form: ``(key, cause print, member prints)``.

    ``open_rows`` are open, unsilenced findings by fingerprint (with ``payload``
    and ``severity``); a finding joins one incident at most, the most severe first.
    """
    payloads = {fp: json.loads(r["payload"]) for fp, r in open_rows.items()}
    labels = {fp: labels_of(p, settings.evidence_labels) for fp, p in payloads.items()}
    groups: dict[str, _Group] = {}
    order = sorted(labels)
    for rule in settings.inhibit_rules:
        keyed = [e for e in rule.equal if e in settings.group_by]
        if not keyed:
            continue
        sources, targets = rule.sources(), rule.targets()
        for src in order:
            have = labels[src]
            if not all(m.matches(have) for m in sources) or not all(e in have for e in rule.equal):
                continue
            hits = [
                t
                for t in order
                if t != src
                and all(labels[t].get(e) == have[e] for e in rule.equal)
                and all(m.matches(labels[t]) for m in targets)
            ]
            if not hits:
                continue
            key = "+".join(f"{e}:{have[e]}" for e in keyed)
            g = groups.setdefault(key, _Group(key))
            g.causes.add(src)
            g.members |= {src, *hits}
            g.explains[src] += len(hits)

    def rank(fp: str) -> int:
        return Severity(open_rows[fp]["severity"]).rank

    def cause_of(g: _Group, free: set[str]) -> str | None:
        causes = [c for c in g.causes if c in free]
        if not causes:
            return None
        return min(causes, key=lambda c: (-rank(c), -g.explains[c], open_rows[c]["first_seen"], c))

    out: list[tuple[str, str, list[str]]] = []
    taken: set[str] = set()
    ordered = sorted(
        groups.values(),
        key=lambda g: (-max(rank(c) for c in g.causes), -len(g.members), g.key),
    )
    for g in ordered:
        free = g.members - taken
        cause = cause_of(g, free)
        if cause is None or len(free) < settings.min_findings:
            continue
        taken |= free
        out.append((g.key, cause, sorted(free, key=lambda fp: (fp != cause, -rank(fp), fp))))
    return out


# -- the engine's hooks ------------------------------------------------------------
def incident_print(key: str) -> str:
    """The fingerprint of the proposals of the incident keyed ``key``."""
    return fingerprint("incident", "incident", key)


def review(engine: Engine, at: datetime, result: ReviewResult) -> set[str]:
    """Open, update and resolve incidents and bursts; the fingerprints they inhibit.

    Called by the engine after this cycle's findings are recorded and before it
    proposes: the returned findings get no proposal of their own this cycle.
    """
    settings: IncidentSettings = engine.config.incidents
    state = engine.state
    at_ts = fmt_ts(at)
    rules = engine.config.rules
    rows = {
        fp: r
        for fp, r in state.open_findings().items()
        if r["silenced_by"] is None
        and r["rule"] in rules
        and rules[r["rule"]].settings.approval != Approval.off  # off: report only
    }
    current = state.open_incidents()
    found = group(settings, rows) if settings.enabled else []
    # A rejected incident or burst stays recorded but holds nothing back: a person said
    # its grouping was wrong, so its members are judged on their own.
    prints = [incident_print(k) for k, _, _ in found] + [r["fingerprint"] for r in current]
    rejected = {
        fp
        for fp, p in state.latest_proposals(prints).items()
        if p["state"] == ProposalState.rejected.value
    }
    by_key = {r["key"]: r for r in current if r["kind"] == "incident"}
    inhibited: dict[str, int] = {}
    kinds: dict[int, str] = {int(r["id"]): r["kind"] for r in current}
    for key, cause, members in found:
        finding = _incident_finding(key, cause, members, rows)
        payload = json.dumps(finding.model_dump(mode="json"), default=str)
        row = by_key.pop(key, None)
        if row is None:
            incident_id = state.open_incident(
                kind="incident",
                key=key,
                fingerprint=finding.fingerprint,
                rule=finding.rule,
                cause=cause,
                members=members,
                payload=payload,
                at=at_ts,
                reason=finding.summary.split("\n", 1)[0],
            )
            _propose(engine, incident_id, finding, settings.approval, at, result)
        else:
            incident_id = int(row["id"])
            before = set(json.loads(row["members"]))
            state.update_incident(
                incident_id,
                cause=cause,
                members=members,
                payload=payload,
                at=at_ts,
                added=[m for m in members if m not in before],
                rule=finding.rule,
            )
        kinds[incident_id] = "incident"
        if finding.fingerprint in rejected:
            continue
        _inhibit(engine, incident_id, key, members, at_ts, result)
        inhibited.update(dict.fromkeys(members, incident_id))
    for row in by_key.values():
        # No longer enough findings to open one, but its cause still fires: it holds what is left.
        still = [fp for fp in json.loads(row["members"]) if fp in rows and fp not in inhibited]
        if row["cause"] not in still:
            _resolve(engine, row, at_ts, "its cause is no longer open", result)
            continue
        if len(still) != len(json.loads(row["members"])):
            state.update_incident(
                int(row["id"]),
                cause=row["cause"],
                members=still,
                payload=row["payload"],
                at=at_ts,
                added=[],
                rule=json.loads(row["payload"])["rule"],
            )
        if row["fingerprint"] not in rejected:
            inhibited.update(dict.fromkeys(still, int(row["id"])))
    for row in (r for r in current if r["kind"] == "burst"):
        still = [fp for fp in json.loads(row["members"]) if fp in rows and fp not in inhibited]
        if not still:
            _resolve(engine, row, at_ts, "none of its findings is open any more", result)
            continue
        if row["fingerprint"] not in rejected:
            inhibited.update(dict.fromkeys(still, int(row["id"])))
    _annotate(result, inhibited, kinds)
    return set(inhibited)


def burst_limit(engine: Engine, rule: str) -> int:
    """How many proposals of ``rule`` one cycle may file before they become one burst."""
    own = engine.config.rules[rule].settings.burst_limit
    return own if own is not None else engine.config.reviewer.burst_limit


def bursts(
    engine: Engine, candidates: list[tuple[Finding, Any, str]], at: datetime, result: ReviewResult
) -> list[tuple[Finding, Any, str]]:
    """The candidates left once each rule's flood is folded into one summary proposal."""
    per_rule = Counter(f.rule for f, _, _ in candidates)
    flooding = {r for r, n in per_rule.items() if n > burst_limit(engine, r)}
    if not flooding:
        return candidates
    at_ts = fmt_ts(at)
    state = engine.state
    open_bursts = {r["key"]: r for r in state.open_incidents() if r["kind"] == "burst"}
    # A burst whose summary a person rejected lets its rule's proposals through one by one.
    latest = state.latest_proposals([r["fingerprint"] for r in open_bursts.values()])
    flooding -= {
        r["key"].removeprefix("rule:")
        for r in open_bursts.values()
        if latest.get(r["fingerprint"], {}).get("state") == ProposalState.rejected.value
    }
    for rule in sorted(flooding):
        members = [f for f, _, _ in candidates if f.rule == rule]
        key = f"rule:{rule}"
        row = open_bursts.get(key)
        prints = sorted(
            {f.fingerprint for f in members} | set(json.loads(row["members"]) if row else [])
        )
        finding = _burst_finding(rule, members, burst_limit(engine, rule))
        payload = json.dumps(finding.model_dump(mode="json"), default=str)
        if row is None:
            burst_id = state.open_incident(
                kind="burst",
                key=key,
                fingerprint=finding.fingerprint,
                rule=rule,
                cause=None,
                members=prints,
                payload=payload,
                at=at_ts,
                reason=finding.summary.split("\n", 1)[0],
            )
            _propose(
                engine, burst_id, finding, engine.config.rules[rule].settings.approval, at, result
            )
        else:
            burst_id = int(row["id"])
            before = set(json.loads(row["members"]))
            state.update_incident(
                burst_id,
                cause=None,
                members=prints,
                payload=payload,
                at=at_ts,
                added=[p for p in prints if p not in before],
                rule=rule,
            )
        _annotate(
            result, dict.fromkeys((f.fingerprint for f in members), burst_id), {burst_id: "burst"}
        )
    keep = [c for c in candidates if c[0].rule not in flooding]
    return keep


def payload_for(engine: Engine, fingerprint_: str) -> dict[str, Any] | None:
    """The finding an incident's or burst's proposal was made from (for its task)."""
    row = engine.state.incident_by_print(fingerprint_)
    return json.loads(row["payload"]) if row else None


def listing(
    state_: ReviewerState, state: str | None = "open", limit: int = 200
) -> list[dict[str, Any]]:
    """Incidents and bursts in their JSON form (``incidents list --json``, the API),
    each with its proposal's id and state."""
    rows = state_.list_incidents(state, limit)
    latest = state_.latest_proposals([r["fingerprint"] for r in rows])
    out = []
    for r in rows:
        payload = json.loads(r["payload"])
        proposal = latest.get(r["fingerprint"])
        out.append(
            {
                "id": r["id"],
                "kind": r["kind"],
                "key": r["key"],
                "state": r["state"],
                "severity": payload.get("severity"),
                "title": payload.get("title"),
                "summary": payload.get("summary"),
                "likeliest_cause": payload.get("evidence", {}).get("likeliest_cause"),
                "cause": r["cause"],
                "members": json.loads(r["members"]),
                "opened_at": r["opened_at"],
                "updated_at": r["updated_at"],
                "resolved_at": r["resolved_at"],
                "proposal": (
                    {
                        "id": proposal["id"],
                        "state": proposal["state"],
                        "task_id": proposal["task_id"],
                    }
                    if proposal
                    else None
                ),
            }
        )
    return out


# -- helpers ---------------------------------------------------------------------------
def _propose(
    engine: Engine,
    incident_id: int,
    finding: Finding,
    approval: Approval,
    at: datetime,
    result: ReviewResult,
) -> None:
    """The incident's one proposal, unless one already speaks for its key."""
    at_ts = fmt_ts(at)
    state = engine.state
    if state.active_proposal(finding.fingerprint) is not None:
        return
    if state.in_cooldown([finding.fingerprint], at_ts):
        return
    proposal = engine._create(finding, None, "", at, result, approval)
    result.proposals[-1]["incident"] = incident_id
    if approval == Approval.auto:
        proposal = engine._schedule(proposal, at_ts, ACTOR, "approval = auto", result)
        result.proposals[-1] = {**proposal.public(), "change": "created", "incident": incident_id}


def _inhibit(
    engine: Engine,
    incident_id: int,
    key: str,
    members: list[str],
    at: str,
    result: ReviewResult,
) -> None:
    """Members' pending proposals give way to the incident's (superseded, with a pointer)."""
    for fp in members:
        active = engine.state.active_proposal(fp)
        if active is None or active.state != ProposalState.pending:
            continue
        done = engine.state.transition(
            active,
            ProposalState.superseded,
            at=at,
            actor=ACTOR,
            reason=f"inhibited by incident {incident_id} ({key}): its one task covers this",
            allowed_from=(ProposalState.pending,),
        )
        result.proposals.append({**done.public(), "change": "superseded", "incident": incident_id})


def _resolve(engine: Engine, row: Row, at: str, why: str, result: ReviewResult) -> None:
    engine.state.resolve_incident(int(row["id"]), at=at, reason=why)
    engine.resolve_pending(
        row["fingerprint"],
        at,
        f"{row['kind']} {row['id']} resolved before anyone acted ({why})",
        result,
    )


def _annotate(result: ReviewResult, inhibited: dict[str, int], kinds: dict[int, str]) -> None:
    """Mark this cycle's findings that wait behind an incident or burst (``review --json``)."""
    for item in result.findings:
        incident_id = inhibited.get(item["fingerprint"])
        if incident_id is not None:
            item["incident"] = incident_id
            item["incident_kind"] = kinds.get(incident_id, "incident")
            item["inhibited"] = True


def _brief(payload: dict[str, Any]) -> str:
    return f"{payload['severity']} {payload['rule']}/{payload['kind']} {payload['subject']}"


def _incident_finding(key: str, cause: str, members: list[str], rows: dict[str, Row]) -> Finding:
    payloads = [json.loads(rows[fp]["payload"]) for fp in members]
    top = payloads[0]  # the cause comes first
    rules = sorted({p["rule"] for p in payloads})
    severity = max((Severity(p["severity"]) for p in payloads), key=lambda s: s.rank)
    listed = "\n".join(f"- {_brief(p)}: {p['summary']}" for p in payloads[:_MAX_LISTED])
    more = f"\n- and {len(payloads) - _MAX_LISTED} more" if len(payloads) > _MAX_LISTED else ""
    scope = key.replace("+", " and ")
    return Finding(
        rule=top["rule"],
        kind="incident",
        subject=key,
        severity=severity,
        fingerprint=incident_print(key),
        summary=(
            f"{len(payloads)} findings of {len(rules)} rule(s) share {scope}; the likeliest "
            f"cause is {_brief(top)}: {top['summary']}\n\nSymptoms:\n{listed}{more}"
        ),
        evidence={
            "incident_key": key,
            "likeliest_cause": f"{top['rule']}/{top['kind']} {top['subject']}",
            "findings": len(payloads),
            "rules": rules,
            **{_brief(p): p.get("evidence", {}) for p in payloads[:_MAX_LISTED]},
        },
        title=f"Incident on {scope}: {top.get('title') or top['summary'][:120]}",
        why=(
            f"These {len(payloads)} findings share {scope}, and the most severe of them can "
            "produce all the others: fixing the cause clears the symptoms, and one task for it "
            "replaces one task per symptom."
        ),
        action=(
            (top.get("action") or f"Diagnose {top['subject']} and heal it.")
            + " Then check that the symptoms listed above clear; the reviewer resolves the "
            "incident when they do, and files a proposal for any that remains on its own."
        ),
        task_type="heal",
        remedy=str(top.get("remedy") or "alert"),  # the cause's remedy (e.g. pause it)
        related=[p["subject"] for p in payloads[:_MAX_LISTED]],
    )


def _burst_finding(rule: str, members: list[Finding], limit: int) -> Finding:
    kinds = Counter(f.kind for f in members)
    severity = max((f.severity or Severity.info for f in members), key=lambda s: s.rank)
    listed = "\n".join(f"- {f.kind} {f.subject}: {f.summary[:200]}" for f in members[:_MAX_LISTED])
    more = f"\n- and {len(members) - _MAX_LISTED} more" if len(members) > _MAX_LISTED else ""
    kinds_text = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    return Finding(
        kind="burst",
        subject=f"rule:{rule}",
        summary=(
            f"Rule {rule} would file {len(members)} proposals in one review ({kinds_text}), "
            f"more than its burst limit of {limit}: something is wrong with {rule} or with "
            f"what it watches.\n\nFindings:\n{listed}{more}"
        ),
        evidence={
            "proposals": len(members),
            "burst_limit": limit,
            "kinds": dict(kinds),
            **{f"{f.kind} {f.subject}": f.evidence for f in members[:_MAX_LISTED]},
        },
        title=f"Something is wrong with {rule}: {len(members)} findings in one review",
        why=(
            "Many findings of one rule at once usually share one cause (a broken runner, a "
            "bad deploy, a rule tuned too tight); one task to find it beats a flood of tasks."
        ),
        action=(
            f"Look for what the findings above have in common and fix that, or tune "
            f"[rules.{rule}] if they are not problems; the reviewer files the ones that remain "
            "one by one once this burst resolves."
        ),
        related=[f.subject for f in members[:_MAX_LISTED]],
    ).with_identity(rule, severity)


__all__ = [
    "IncidentSettings",
    "InhibitRule",
    "Matcher",
    "burst_limit",
    "bursts",
    "group",
    "incident_print",
    "labels_of",
    "listing",
    "payload_for",
    "review",
]
