"""Deterministic A/B assignment for pipelines that want one.

``assign(task_id, variants, salt)`` hashes ``salt + ":" + task_id`` with
SHA-256, reads the first 8 bytes as an unsigned big-endian integer and divides
by 2**64, giving a number ``u`` in [0, 1). The variants, sorted by name (so
the order they were written in does not matter), share [0, 1) in proportion
to their weights; the variant whose share holds ``u`` is the answer.

The same task, variants and salt give the same variant in every process, on
every machine and Python version (no ``hash()`` randomisation). Use one salt
per experiment, so two experiments do not split the same tasks the same way.
Weights come from config::

    [experiments.prompt-v2]
    by = "prompt_variant"
    variants = { A = 0.5, B = 0.5 }
    salt = "prompt-v2"
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

from reviewer.config import Config


def bucket(task_id: str, salt: str) -> float:
    """The task's uniform draw in [0, 1) for this salt."""
    digest = hashlib.sha256(f"{salt}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(task_id: str, variants: Mapping[str, float], salt: str) -> str:
    """The variant ``task_id`` gets, by weight; stable across processes."""
    if not variants:
        raise ValueError("variants is empty; give at least one variant and its weight")
    for name, weight in variants.items():
        if not (weight > 0 and math.isfinite(weight)):
            raise ValueError(f"weight of variant {name!r} must be a positive number, got {weight}")
    names = sorted(variants)
    total = math.fsum(variants[n] for n in names)
    point = bucket(task_id, salt) * total
    upper = 0.0
    for name in names:
        upper += variants[name]
        if point < upper:
            return name
    return names[-1]  # only reachable through float rounding at the very top


def assign_for(config: Config, experiment: str, task_id: str) -> str:
    """The variant of ``task_id`` in a configured experiment (its weights and salt)."""
    from reviewer.experiments import experiment_settings

    settings = experiment_settings(config)
    exp = settings.experiments.get(experiment)
    if exp is None or not exp.variants:
        raise ValueError(f"[experiments.{experiment}] with variants is not configured")
    return assign(task_id, exp.variants, exp.salt or experiment)
