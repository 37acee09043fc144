"""The contract every rule module keeps.

A rule module declares:

``ID``
    a stable kebab-case identifier, used in config (``[rules.<ID>]``), in
    findings and in silences;
``Options``
    a pydantic model (subclass of ``RuleOptions``) of its options, each with
    a default; cross-field checks go in a validator;
``check(options, view)``
    a pure function that reads the store through ``view`` (a read-only
    ``BacklogView`` as of ``view.now``) and yields ``Finding`` objects. It does
    no I/O of its own, never reads the clock and writes nothing: the engine
    owns time, persistence, dedup and scheduling.

and may declare ``DEFAULTS``, the rule's own defaults for the shared keys
(``enabled``, ``severity``, ``approval``). The module docstring is the user's
documentation of the rule; the README's rule reference is checked against it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from reviewer.models import Finding
from store._view import BacklogView


class RuleOptions(BaseModel):
    """Base of every rule's options: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class RuleModule(Protocol):
    """What the engine needs of a rule module."""

    ID: str
    Options: type[RuleOptions]
    DEFAULTS: dict[str, Any]
    __doc__: str | None

    def check(self, options: Any, view: BacklogView) -> Iterable[Finding]: ...
