"""The ``[experiments]`` config table (see ``reviewer.experiments`` for what it drives).

Its own module so that ``reviewer.config`` can check the table when it loads a
file, and ``reviewer.experiments`` can use the settings, without the two
importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ArmColumn = Literal["prompt_variant", "skill_version", "model"]


class ExperimentDef(BaseModel):
    """One ``[experiments.<name>]`` table."""

    model_config = ConfigDict(extra="forbid")

    by: ArmColumn = "prompt_variant"
    control: str | None = None
    variants: dict[str, float] | None = None
    salt: str | None = None

    @field_validator("variants")
    @classmethod
    def _positive(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None:
            if not value:
                raise ValueError("variants must name at least one variant")
            bad = [k for k, w in value.items() if not (w > 0 and math.isfinite(w))]
            if bad:
                raise ValueError(f"weights must be positive numbers (variant {bad[0]!r})")
        return value


class ExperimentSettings(BaseModel):
    """The ``[experiments]`` table: shared settings plus the named experiments."""

    model_config = ConfigDict(extra="forbid")

    min_samples: int = Field(default=30, ge=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    max_durations_per_arm: int = Field(default=100_000, ge=1)
    srm_p: float = Field(default=0.001, gt=0, lt=1)
    experiments: dict[str, ExperimentDef] = Field(default_factory=dict)


def parse_experiments(table: Mapping[str, Any], where: str) -> ExperimentSettings:
    """The validated ``[experiments]`` table; a bad one raises ``ValueError`` naming
    ``where`` (the file), the table and the option."""
    raw = dict(table)
    named = {k: raw.pop(k) for k in list(raw) if isinstance(raw[k], dict)}
    try:
        settings = ExperimentSettings.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{where}: [experiments] option '{err['loc'][0]}': {err['msg']}") from None
    for name, table in named.items():
        try:
            settings.experiments[name] = ExperimentDef.model_validate(table)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            raise ValueError(f"{where}: [experiments.{name}] option '{loc}': {msg}") from None
    return settings
