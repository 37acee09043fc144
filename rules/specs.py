"""Reading a Markdown spec the one way every rule does (spec-drift, review-audit, test-health).

A full CommonMark parser would be a dependency for four facts: the headings
(ATX ``#`` headings, outside fenced code), the text under each, the list items
in a section, and the backticked paths in a section. This module reads just
those, line by line, and is tested on the seed spec. The list of code paths a
spec names (``listed_files``) and the matching of a changed path against it
(``covered``) live here, outside any one rule's folder, so every rule that
judges work against a spec reads it the same way and rules stay independent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache

_FENCE = re.compile(r"^\s{0,3}(```+|~~~+)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s*)?(.*\S)")
_THIS_SPEC = re.compile(r"\bthis spec\b", re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_PATHLIKE = re.compile(r"^[\w.\-*/]+$")
_FILE_NAME = re.compile(r"\w\.[A-Za-z]\w*$")
_BASELINE = re.compile(
    r"(?:<!--\s*reviewer:\s*baseline\s+|^reviewer[_-]baseline:\s*)([^\s>]+)",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass
class Section:
    """One heading and everything under it, down to the next heading of its level or higher."""

    title: str
    level: int
    lines: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when the section holds nothing but blank lines and HTML comments."""
        return not _COMMENT.sub("", "\n".join(self.lines)).strip()

    def items(self) -> list[str]:
        """The text of every list item in the section (nested lists and subsections too)."""
        return [m.group(1) for line in _outside_fences(self.lines) if (m := _ITEM.match(line))]

    def paths(self) -> list[tuple[str, str]]:
        """Backticked path-like tokens, each with the line it came from, first mention only."""
        seen: dict[str, str] = {}
        for line in self.lines:
            for token in _CODE_SPAN.findall(line):
                token = token.strip()
                if _PATHLIKE.match(token) and ("/" in token or _FILE_NAME.search(token)):
                    seen.setdefault(token, line)
        return list(seen.items())


_PARENS = re.compile(r"\([^)]*\)")
_NUMBERING = re.compile(r"^\s*\d+(?:\.\d+)*[.)]?\s+")
_EMPHASIS = re.compile(r"[*_`]")


@lru_cache(maxsize=4096)
def heading_key(title: str) -> str:
    """A heading reduced for matching: lower case, no numbering, parentheses or colon."""
    text = _PARENS.sub("", title)
    text = _NUMBERING.sub("", text)
    text = _EMPHASIS.sub("", text)
    return " ".join(text.lower().rstrip(":").split())


def parse_sections(text: str) -> list[Section]:
    """Every heading of the document as a section, in document order."""
    lines = text.splitlines()
    heads: list[tuple[int, int, str]] = []
    fenced = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else _HEADING.match(line)
        if m:
            heads.append((i, len(m.group(1)), m.group(2)))
    sections = []
    for n, (start, level, title) in enumerate(heads):
        end = next((s for s, lv, _ in heads[n + 1 :] if lv <= level), len(lines))
        sections.append(Section(title=title, level=level, lines=lines[start + 1 : end]))
    return sections


def find_section(sections: list[Section], names: str) -> Section | None:
    """The first section whose heading matches one of ``names`` (``"A|B"`` lists aliases)."""
    wanted = {heading_key(n) for n in names.split("|")}
    return next((s for s in sections if heading_key(s.title) in wanted), None)


def baseline_marker(text: str) -> str | None:
    """A baseline the spec declares itself: ``<!-- reviewer: baseline X -->`` or front matter."""
    m = _BASELINE.search(text)
    return m.group(1) if m else None


def norm_path(path: str) -> str | None:
    """A repository-relative POSIX path, or None for one that leaves the repository."""
    p = path.strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    p = re.sub(r"/+", "/", p)
    if not p or p.startswith("/") or ".." in p.split("/"):
        return None
    return p


_GLOB_CHARS = frozenset("*?[")


def glob_match(path: str, pattern: str) -> bool:
    """gitignore-like: a pattern without ``/`` matches the file name; ``*`` also spans ``/``."""
    if _GLOB_CHARS.isdisjoint(pattern):
        # A plain path (most listed files): no pattern to compile.
        if "/" not in pattern.rstrip("/"):
            return path.rsplit("/", 1)[-1] == pattern
        plain = pattern.removeprefix("/")
        return path.startswith(plain) if plain.endswith("/") else path == plain
    if "/" not in pattern.rstrip("/"):
        return fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    pattern = pattern.removeprefix("/")
    if pattern.endswith("/"):
        pattern += "**"
    return fnmatchcase(path, pattern) or (
        pattern.startswith("**/") and fnmatchcase(path, pattern[3:])
    )


def _outside_fences(lines: list[str]) -> list[str]:
    out, fenced = [], False
    for line in lines:
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            out.append(line)
    return out


def spec_ref(value: str, prefixes: list[str]) -> str | None:
    """A ``tasks.spec`` value or baseline key as a path relative to ``specs_dir``."""
    path = norm_path(value)
    if path is None:
        return None
    for prefix in prefixes:
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


def listed_files(sections: list[Section], files_section: str, prefixes: list[str]) -> list[str]:
    """The code paths a spec lists: backticked paths of its files section, in order.

    Paths under the specs directory and lines about "this spec" are not code.
    Shared with review-audit and test-health, which judge work against the list.
    """
    listed: list[str] = []
    files = find_section(sections, files_section)
    for raw, line in files.paths() if files else []:
        path = norm_path(raw)
        if path and not _THIS_SPEC.search(line) and not under_specs(path, prefixes):
            listed.append(path) if path not in listed else None
    return listed


def covered(path: str, listed: list[str]) -> bool:
    """True when a changed path is one a spec lists, or under a listed directory or glob."""
    return any(
        path == p or path.startswith(p.rstrip("/") + "/") or glob_match(path, p) for p in listed
    )


def under_specs(path: str, prefixes: list[str]) -> bool:
    """True when a path is under the specs directory (so it is not code)."""
    return any(path.startswith(p) for p in prefixes)
