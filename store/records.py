"""The records a pipeline writes (CONTRACT), validated at the edge.

``TaskRecord`` and ``MetricRecord`` check one JSON object and turn it into a
row for the store: timestamps normalised to UTC, lists as JSON text, unknown
fields kept in ``extra``. Used by ``reviewer ingest`` and the HTTP API alike.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from store.timeutil import MIN_YEAR, norm_ts

# Bounded values (issue 9): every integer fits a 64-bit column, every float is finite,
# no text holds a NUL (PostgreSQL refuses one, and then the whole batch with it).
# Beyond that, each figure has a sane maximum far above any real execution, so that
# neither a finding's text nor a sum over a million records can reach inf.
INT64_MAX = 2**63 - 1
DURATION_MAX_S = 1e7  # about 115 days for one execution (or one test case)
COST_MAX_USD = 1e9
TOKENS_MAX = 10**12  # tokens in or out of one execution
API_CALLS_MAX = 10**9
ATTEMPTS_MAX = 10**6
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, le=DURATION_MAX_S, allow_inf_nan=False)]
Dollars = Annotated[float, Field(ge=0, le=COST_MAX_USD, allow_inf_nan=False)]
Tokens = Annotated[int, Field(ge=0, le=TOKENS_MAX)]


def _no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("text must not contain a NUL character")
    if isinstance(value, list):
        for item in value:
            _no_nul(item)
    return value


TaskStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
Priority = Literal["low", "normal", "high", "critical"]


def _ts(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 timestamp string")
    try:
        return norm_ts(value)
    except ValueError as exc:
        if "outside" in str(exc):
            raise ValueError(f"timestamp {exc}") from None
        raise ValueError("expected an ISO 8601 timestamp, like 2026-03-01T12:00:00Z") from None


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    no_nul = field_validator("*", mode="after")(_no_nul)

    def row(self) -> dict[str, Any]:
        """The store row: declared fields, JSON text for lists, unknown fields in ``extra``."""
        data = self.model_dump(exclude=set(self.model_extra or {}))
        for key, value in data.items():
            if isinstance(value, list | dict):
                data[key] = json.dumps(value)
        data["extra"] = json.dumps(self.model_extra, default=str) if self.model_extra else None
        return data


class TaskRecord(_Record):
    """A backlog item."""

    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    description: str | None = None
    task_type: str | None = None
    phase: str | None = None
    status: TaskStatus = "pending"
    priority: Priority = "normal"
    created_at: str | None = None
    updated_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    attempts: Annotated[int, Field(ge=0, le=ATTEMPTS_MAX)] = 0
    depends_on: list[str] = Field(default_factory=list)
    goal_id: str | None = None
    spec: str | None = None
    labels: list[str] = Field(default_factory=list)
    model: str | None = None
    executor: str | None = None
    prompt_variant: str | None = None
    skill_version: str | None = None
    error: str | None = None
    files_changed: list[str] = Field(default_factory=list)
    source: str | None = None

    normalise_timestamps = field_validator(
        "created_at", "updated_at", "started_at", "finished_at", mode="before"
    )(_ts)

    def row(self) -> dict[str, Any]:
        data = super().row()
        # A task with no creation time was created when it was first seen doing anything.
        data["created_at"] = (
            data["created_at"] or data["updated_at"] or data["started_at"] or data["finished_at"]
        )
        return data


class MetricRecord(_Record):
    """One finished execution of a task (the seed spec's TaskMetric)."""

    task_id: str = Field(min_length=1)
    task_type: str | None = None
    model: str | None = None
    executor: str | None = None
    duration_seconds: Seconds
    status: Literal["completed", "failed"]
    created_at: str
    prompt_variant: str | None = None
    skill_version: str | None = None
    tokens_in: Tokens | None = None
    tokens_out: Tokens | None = None
    cost_usd: Dollars | None = None
    api_calls: Annotated[int, Field(ge=0, le=API_CALLS_MAX)] | None = None
    error: str | None = None

    normalise_timestamps = field_validator("created_at", mode="before")(_ts)


def describe_errors(exc: ValidationError) -> list[str]:
    """One message per bad field: ``field 'status': expected ... (got 'done')``."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(record)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            out.append(f"field '{loc}': required field is missing")
            continue
        got = err.get("input")
        out.append(f"field '{loc}': {msg} (got {json.dumps(got, default=str)[:80]})")
    return out


# -- the fast path ------------------------------------------------------------------
# Bulk ingest checks records that are plainly valid (exact types, canonical
# timestamps, stripped text without NUL) in a few dict look-ups, and gives
# every other record to the pydantic model, which converts it or names its bad
# fields. Both give the same row: tests/test_ingest_bulk.py compares them.
_CANONICAL_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_MAX_FLOAT = sys.float_info.max
_MISSING = object()
_TIMESTAMPS = frozenset({"created_at", "updated_at", "started_at", "finished_at"})


def _plain_ts(value: Any) -> bool:
    """Whether ``value`` is already a stored-form timestamp of a real instant in range."""
    if type(value) is not str or not _CANONICAL_TS.fullmatch(value):
        return False
    try:
        year = datetime.fromisoformat(value[:19]).year
    except ValueError:
        return False
    return year >= MIN_YEAR


def _plain_text(value: Any) -> bool:
    return type(value) is str and "\x00" not in value and value == value.strip()


def _field_check(name: str, ann: Any, metadata: list[Any]) -> tuple[str, bool, Any] | None:
    """(kind, may be null, the kind's argument) of one model field, or None when the
    fast path has no check for it."""
    args: list[Any] = [ann]
    nullable = False
    if get_origin(ann) in (Union, UnionType):
        args = [a for a in get_args(ann) if a is not type(None)]
        nullable = len(args) < len(get_args(ann))
    if len(args) != 1:
        return None
    base = args[0]
    if get_origin(base) is Annotated:
        base, *extra = get_args(base)
        for item in extra:
            metadata += getattr(item, "metadata", [item])
    bounds: dict[str, Any] = {}
    for item in metadata:
        kind = type(item).__name__
        if kind == "Ge":
            bounds["ge"] = item.ge
        elif kind == "Le":
            bounds["le"] = item.le
        elif kind == "MinLen" and item.min_length == 1:
            bounds["min1"] = True
        elif kind == "_PydanticGeneralMetadata" and vars(item) == {"allow_inf_nan": False}:
            bounds["finite"] = True
        else:
            return None
    if name in _TIMESTAMPS and base is str and not bounds:
        return ("ts", nullable, None)
    if get_origin(base) is Literal and not bounds:
        return ("literal", nullable, frozenset(get_args(base)))
    if get_origin(base) is list and get_args(base) == (str,) and not bounds:
        return ("list", nullable, None)
    if base is str and set(bounds) <= {"min1"}:
        return ("text", nullable, bool(bounds))
    if base is int and set(bounds) == {"ge", "le"}:
        return ("count", nullable, (bounds["ge"], bounds["le"]))
    if base is float and bounds.get("finite") and "ge" in bounds:
        return ("amount", nullable, (bounds["ge"], bounds.get("le", _MAX_FLOAT)))
    return None


class _Plan:
    """How one model's fields are checked on the fast path (derived from the model)."""

    def __init__(self, model: type[_Record]):
        self.fields = tuple(model.model_fields)
        self.known = frozenset(self.fields)
        self.defaults: dict[str, Any] = {}
        # (field, kind, may be null, kind's argument, the stored default or _MISSING)
        self.checks: list[tuple[str, str, bool, Any, Any]] = []
        # A field of a form this plan does not know (a new constraint, a new type)
        # turns the fast path off for the model: every record then goes to pydantic.
        self.enabled = True
        for name, info in model.model_fields.items():
            if not info.is_required():
                self.defaults[name] = info.get_default(call_default_factory=True)
            check = _field_check(name, info.annotation, list(info.metadata))
            if check is None:
                self.enabled = False
                continue
            default = self.defaults.get(name, _MISSING)
            if isinstance(default, list):
                default = json.dumps(default)  # the stored form
            self.checks.append((name, check[0], check[1], check[2], default))

    def row(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The store row of a plainly valid record, or None to let pydantic judge it."""
        if not self.enabled:
            return None
        row: dict[str, Any] = {}
        for name, base, nullable, arg, default in self.checks:
            value = data.get(name, _MISSING)
            if value is _MISSING:
                if default is _MISSING:
                    return None
                row[name] = default
                continue
            if value is None or (value == "" and base == "ts"):
                if not nullable:
                    return None
                row[name] = None
                continue
            if base == "text":
                if type(value) is not str or "\x00" in value or value != value.strip():
                    return None
                if arg and not value:
                    return None
            elif base == "ts":
                if not _plain_ts(value):
                    return None
            elif base == "literal":
                if type(value) is not str or value not in arg:
                    return None
            elif base == "count":
                if type(value) is not int or not arg[0] <= value <= arg[1]:
                    return None
            elif base == "amount":
                if type(value) is int and 0 <= value <= 2**53:
                    value = float(value)
                if type(value) is not float or not arg[0] <= value <= arg[1]:
                    return None
            elif base == "list":
                if type(value) is not list or not all(_plain_text(x) for x in value):
                    return None
                value = json.dumps(value)
            row[name] = value
        extra = {k: v for k, v in data.items() if k not in self.known}
        row["extra"] = json.dumps(extra, default=str) if extra else None
        return row


_PLANS: dict[type[_Record], _Plan] = {}


def plain_row(model: type[TaskRecord] | type[MetricRecord], data: dict[str, Any]) -> Row | None:
    """``model.model_validate(data).row()`` for a plainly valid record, else None.

    None says nothing about validity: validate such a record with the model.
    """
    plan = _PLANS.get(model)
    if plan is None:
        plan = _PLANS[model] = _Plan(model)
    row = plan.row(data)
    if row is not None and model is TaskRecord:
        row["created_at"] = (
            row["created_at"] or row["updated_at"] or row["started_at"] or row["finished_at"]
        )
    return row


Row = dict[str, Any]
