"""Loading Cobertura XML coverage reports (``reviewer ingest coverage``, ``POST /api/coverage``).

Cobertura XML is what coverage.py's ``coverage xml`` writes and what JaCoCo
reports are converted to (``cover2cover``, the Cobertura-compatible output of
the Gradle and Maven plugins). A report holds ``<package>``s of ``<class>``es,
each with a ``filename`` and its ``<line number= hits= [branch= condition-coverage=]>``
elements. One row per file is stored: lines and branches measured and covered,
summed over the classes of that file (Java inner classes share a file).

The file is parsed with defusedxml (no entities, no DTDs). A class that cannot
be read is reported with the file and the element's position and skipped; the
readable ones are stored, and the command exits non-zero.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from reviewer.ingest import IngestReport, parse_xml
from store import Store
from store.timeutil import fmt_ts

_CONDITIONS = re.compile(r"\((\d+)\s*/\s*(\d+)\)")
# Conditions on one line: far above any real branch, small enough that no sum overflows.
CONDITIONS_MAX = 10_000


def _recorded_at(root: Element, default: str) -> str:
    """The report's own time: ``timestamp`` in milliseconds (coverage.py) or seconds."""
    stamp = (root.get("timestamp") or "").strip()
    if not stamp.isdigit():
        return default
    value = int(stamp)
    seconds = value / 1000 if value > 10**11 else value
    try:
        return fmt_ts(datetime.fromtimestamp(seconds, tz=UTC))
    except (OverflowError, OSError, ValueError):
        return default


def _class_counts(cls: Element, where: str) -> tuple[int, int, int, int]:
    """Lines measured, lines covered, branches measured, branches covered of one class."""
    lines = covered = branches = branches_hit = 0
    for line in cls.iter("line"):
        hits = line.get("hits")
        if hits is None or not hits.strip().lstrip("-").isdigit():
            raise ValueError(f"{where}: <line number={line.get('number')!r}> has no integer hits")
        lines += 1
        covered += int(hits) > 0
        if (line.get("branch") or "").lower() == "true":
            m = _CONDITIONS.search(line.get("condition-coverage") or "")
            if m:
                hit, total = int(m.group(1)), int(m.group(2))
                if total > CONDITIONS_MAX or hit > total:
                    raise ValueError(
                        f"{where}: <line number={line.get('number')!r}> attribute "
                        f"'condition-coverage': {m.group(0)!r} is not hit/total with at "
                        f"most {CONDITIONS_MAX} conditions"
                    )
                branches_hit += hit
                branches += total
    return lines, covered, branches, branches_hit


def parse_cobertura(
    path: Path, *, commit: str, branch: str | None, default_at: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per-file rows of one Cobertura report, and one message per element that was skipped.

    Raises ValueError (naming the file) when the document itself cannot be read.
    """
    root = parse_xml(path, "coverage reports")
    if root.tag != "coverage":
        raise ValueError(
            f"{path}: expected a Cobertura <coverage> root element, found <{root.tag}>"
        )
    at = _recorded_at(root, default_at)
    files: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    for n, cls in enumerate(root.iter("class"), start=1):
        name = (cls.get("filename") or "").strip().replace("\\", "/")
        where = f"{path}: <class> #{n} ({cls.get('name') or 'unnamed'})"
        if not name:
            errors.append(f"{where}: no filename attribute; skipped")
            continue
        try:
            lines, covered, branches, branches_hit = _class_counts(cls, where)
        except ValueError as exc:
            errors.append(f"{exc}; class skipped")
            continue
        row = files.setdefault(
            name,
            {
                "commit_sha": commit,
                "branch": branch,
                "file": name,
                "lines_valid": 0,
                "lines_covered": 0,
                "branches_valid": 0,
                "branches_covered": 0,
                "recorded_at": at,
            },
        )
        row["lines_valid"] += lines
        row["lines_covered"] += covered
        row["branches_valid"] += branches
        row["branches_covered"] += branches_hit
    return list(files.values()), errors


def ingest_coverage(
    store: Store, path: str | Path, *, commit: str, branch: str | None = None, now: str
) -> IngestReport:
    """Load one Cobertura XML report for ``commit``; a re-load replaces its files' figures."""
    report = IngestReport()
    p = Path(path)
    if not p.is_file():
        report.rejected.append(f"{p}: file not found")
        return report
    try:
        rows, errors = parse_cobertura(p, commit=commit, branch=branch, default_at=now)
    except ValueError as exc:
        report.rejected.append(str(exc))
        return report
    report.rejected.extend(errors)
    report.stored = store.upsert_coverage(rows)
    return report
