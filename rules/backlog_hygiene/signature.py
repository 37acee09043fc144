"""Error texts reduced to a signature, so one cause's failures group together.

Sentry groups events by their exception type and message with the variable
parts taken out. An agent's error text has the same variable parts: the
instant, the task or run id, a path, a commit sha, a count. ``signature``
keeps the line that says what went wrong (the last line of a Python
traceback, else the first line) and puts a placeholder in each variable part.
"""

from __future__ import annotations

import re

_MAX = 160
_TRACEBACK = re.compile(r"traceback \(most recent call last\)", re.IGNORECASE)
# Most specific first: a timestamp holds numbers, a URL holds a path.
_PARTS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            r"\b\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?\b"
        ),
        "<ts>",
    ),
    (re.compile(r"\b\d\d:\d\d:\d\d(?:\.\d+)?\b"), "<ts>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\bhttps?://\S+"), "<url>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    # A path: two or more segments joined by / or \, or a file name with a line number.
    (re.compile(r"(?:[A-Za-z]:)?(?:[\w.~-]*[/\\])+[\w.-]+(?::\d+)?"), "<path>"),
    (
        re.compile(r"\b[\w-]+\.(?:py|js|ts|go|rs|java|rb|md|txt|json|toml|ya?ml)(?::\d+)?\b"),
        "<path>",
    ),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,}\b", re.I), "<hex>"),
    # An id: letters joined to digits (task-123, run_7, t42).
    (re.compile(r"\b[A-Za-z]+[-_]?\d[\w-]*\b"), "<id>"),
    # A number, with a unit if it has one (600s, 2.5GB).
    (re.compile(r"\b\d+(?:\.\d+)?(?:[A-Za-z]{1,3})?\b"), "<n>"),
]
_SPACE = re.compile(r"\s+")


def signature(text: str) -> str:
    """The normalised signature of an error text; ``""`` for an empty one."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1] if _TRACEBACK.search(text) else lines[0]
    for pattern, placeholder in _PARTS:
        line = pattern.sub(placeholder, line)
    line = _SPACE.sub(" ", line).strip()
    return line[:_MAX]
