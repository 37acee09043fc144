"""The labelled pipeline-history generator ``reviewer demo`` and ``bench/`` use.

``history`` writes a seeded history into a store and a workspace and returns
the problems it injected as ``Labels``.
"""

from __future__ import annotations

from reviewer.sim.history import ALL_KINDS, Label, Labels, simulate, to_toml

__all__ = ["ALL_KINDS", "Label", "Labels", "simulate", "to_toml"]
