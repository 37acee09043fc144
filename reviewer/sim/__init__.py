"""The labelled pipeline-history generator ``reviewer demo`` and ``bench/`` use.

``history`` writes a seeded history into a store and a workspace and returns
the problems it injected as ``Labels``: labels for those it places itself, and
plain ``injections`` for the faults whose labels are judged from the records by
the labeller in ``bench/sim_labels.py`` (not in the wheel).
"""

from __future__ import annotations

from reviewer.sim.history import (
    ALL_KINDS,
    Injection,
    Label,
    Labels,
    SimRecord,
    StallCheck,
    simulate,
    to_toml,
)

__all__ = [
    "ALL_KINDS",
    "Injection",
    "Label",
    "Labels",
    "SimRecord",
    "StallCheck",
    "simulate",
    "to_toml",
]
