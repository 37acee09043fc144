"""The records a pipeline writes (CONTRACT), validated at the edge.

``TaskRecord`` and ``MetricRecord`` check one JSON object and turn it into a
row for the store: timestamps normalised to UTC, lists as JSON text, unknown
fields kept in ``extra``. Used by ``reviewer ingest`` and the HTTP API alike.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from store.timeutil import norm_ts

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
