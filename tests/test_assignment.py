"""Deterministic A/B assignment."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import Counter

import pytest

from reviewer.assignment import assign, assign_for, bucket
from tests.support import make_config


def test_bucket_is_the_documented_hash() -> None:
    digest = hashlib.sha256(b"salt:task-1").digest()
    assert bucket("task-1", "salt") == int.from_bytes(digest[:8], "big") / 2**64


@pytest.mark.slow
def test_stable_across_processes_and_insertion_order() -> None:
    here = assign("task-42", {"A": 0.5, "B": 0.5}, "exp1")
    code = (
        "from reviewer.assignment import assign; "
        "print(assign('task-42', {'B': 0.5, 'A': 0.5}, 'exp1'))"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert there.stdout.strip() == here


def test_weights_are_respected() -> None:
    counts = Counter(assign(f"t{i}", {"A": 0.8, "B": 0.2}, "s") for i in range(20000))
    assert counts["A"] / 20000 == pytest.approx(0.8, abs=0.015)
    assert assign("t", {"only": 1.0}, "s") == "only"
    # different salts split the same tasks differently
    a = [assign(f"t{i}", {"A": 1, "B": 1}, "x") for i in range(200)]
    b = [assign(f"t{i}", {"A": 1, "B": 1}, "y") for i in range(200)]
    assert a != b


def test_bad_weights_and_config() -> None:
    with pytest.raises(ValueError, match="empty"):
        assign("t", {}, "s")
    with pytest.raises(ValueError, match="positive"):
        assign("t", {"A": 0}, "s")
    cfg = make_config({"experiments": {"p2": {"variants": {"A": 0.5, "B": 0.5}}}})
    assert assign_for(cfg, "p2", "t1") == assign("t1", {"A": 0.5, "B": 0.5}, "p2")
