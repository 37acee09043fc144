"""Finite numbers in everything the reviewer prints or serves (issue 9).

Records are bounded at the edge (``store.records``), but a direct SQL writer can
still put ``1e308`` twice into a column whose sum is then ``inf``. So every JSON
document goes out through ``dumps`` (``allow_nan=False`` after ``finite`` has
turned each non-finite float into ``null``), and a finding's text through
``finite_text`` (a figure that is not finite reads ``n/a``, never ``inf`` or ``nan``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Python's spelling of a non-finite float inside formatted text ("$inf", "inf×",
# "-inf%", "nan s"), but not inside a word ("info", "nanny").
_NON_FINITE = re.compile(r"(?<![\w.])[-+]?(?:inf|nan)(?![\w])", re.IGNORECASE)


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (in nested dicts, lists, tuples) as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that never writes ``Infinity`` or ``NaN`` (they become ``null``)."""
    kwargs.setdefault("default", str)
    return json.dumps(finite(value), allow_nan=False, **kwargs)


def finite_text(text: str) -> str:
    """Text in which a formatted non-finite figure reads ``n/a``."""
    return _NON_FINITE.sub("n/a", text)
