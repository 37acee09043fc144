"""The files a review reads besides the store: specs and the code they describe.

Rules never touch the file system themselves; they ask the view's workspace,
which the engine builds from ``specs_dir`` and ``repo_dir``. Answers are
cached per instance (one review), and every git call has a timeout, so a slow
or broken repository costs one review a bounded delay, never a hang.

When a file's directory is a git work tree, its change time is the committer
date of the last commit touching it, as of a given instant; otherwise (no git,
not a repository, or a file git does not track) it is the file's mtime, and
an mtime after that instant is no answer at all: the history before it is
unknown. Likewise a file existed at an instant when git's first commit of it
is at or before it; outside git when its mtime is (it cannot have changed
before it existed), and an mtime after the instant leaves it unknown.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path

from store.timeutil import fmt_ts, parse_ts

log = logging.getLogger(__name__)

_CACHE_LIMIT = 20_000
_REV = re.compile(r"^[0-9a-fA-F]{4,40}$")


@dataclass(frozen=True)
class SpecFile:
    """One spec: its path relative to ``specs_dir`` (POSIX form) and its text."""

    path: str
    text: str


@dataclass
class Workspace:
    """Read-only access to ``specs_dir`` and ``repo_dir`` for rules."""

    specs_dir: Path | None
    repo_dir: Path | None
    git_timeout: float = 10.0
    _cache: dict[tuple[str, ...], object] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def spec_files(self, patterns: Iterable[str], exclude: Iterable[str] = ()) -> list[SpecFile]:
        """Spec files under ``specs_dir`` matching any glob in ``patterns``, recursively, sorted."""
        base = self.specs_dir
        if base is None or not base.is_dir():
            return []
        skip = list(exclude)
        found: dict[str, Path] = {}
        for pattern in patterns:
            for path in base.rglob(pattern):
                rel = path.relative_to(base).as_posix()
                if path.is_file() and not any(fnmatchcase(path.name, p) for p in skip):
                    found.setdefault(rel, path)
        return [
            SpecFile(rel, found[rel].read_text(encoding="utf-8", errors="replace"))
            for rel in sorted(found)
        ]

    def spec_ref_prefixes(self) -> list[str]:
        """Prefixes a task's ``spec`` field may put before a path relative to ``specs_dir``.

        ``specs/``, the directory's own name, and its path inside ``repo_dir``.
        """
        cached = self._cache.get(("prefixes",))
        if cached is not None:
            return list(cached)  # type: ignore[call-overload]
        prefixes = ["specs/"]
        if self.specs_dir is not None:
            prefixes.append(self.specs_dir.name + "/")
            if self.repo_dir is not None:
                specs, repo = self.specs_dir.resolve(), self.repo_dir.resolve()
                if repo in specs.parents:
                    prefixes.append(specs.relative_to(repo).as_posix() + "/")
        found = sorted(set(prefixes), key=lambda p: (-len(p), p))
        self._cache[("prefixes",)] = tuple(found)
        return found

    def file_exists(self, path: str) -> bool:
        """Whether ``path`` (relative to ``repo_dir``) is a file or directory inside it."""
        target = self._inside(self.repo_dir, path)
        return target is not None and target.exists()

    def file_text(self, path: str, limit: int = 1_000_000) -> str | None:
        """The text of a file under ``repo_dir`` (its first ``limit`` characters), or None."""
        target = self._inside(self.repo_dir, path)
        if target is None or not target.is_file():
            return None
        with target.open(encoding="utf-8", errors="replace") as fh:
            return fh.read(limit)

    def last_change(
        self, path: str, before: datetime, *, in_specs: bool = False
    ) -> datetime | None:
        """When ``path`` (in ``repo_dir``, or ``specs_dir``) last changed at or before ``before``.

        None when the file never changed by then, or nothing is known about it.
        """
        base = self.specs_dir if in_specs else self.repo_dir
        target = self._inside(base, path)
        if base is None or target is None:
            return None
        key = ("change", str(target), fmt_ts(before))
        if key not in self._cache:
            if len(self._cache) > _CACHE_LIMIT:  # a daemon reviews many instants; stay bounded
                self._cache.clear()
            self._cache[key] = self._git_change(base, target, before) or self._mtime(target, before)
        return self._cache[key]  # type: ignore[return-value]

    def existed_at(self, path: str, at: datetime, *, in_specs: bool = False) -> bool | None:
        """Whether ``path`` (in ``repo_dir``, or ``specs_dir``) existed at ``at``.

        True or False from git's first commit of the file; outside git True when
        its mtime is at or before ``at``, and None (unknown) when it is after:
        the mtime is the last change, not the creation.
        """
        base = self.specs_dir if in_specs else self.repo_dir
        target = self._inside(base, path)
        if base is None or target is None:
            return None
        if self._is_git(base):
            try:
                rel = target.relative_to(base.resolve()).as_posix()
            except ValueError:
                rel = None
            first = self._git_first(base).get(rel) if rel is not None else None
            if first is not None:
                return first <= at
        return True if self._mtime(target, at) is not None else None

    def commit_time(self, rev: str) -> datetime | None:
        """The committer date of commit ``rev`` in ``repo_dir`` (or ``specs_dir``), if known."""
        if not _REV.match(rev):
            return None
        for base in (self.repo_dir, self.specs_dir):
            if base is not None and self._is_git(base):
                out = self._git(base, "show", "-s", "--format=%cI", rev + "^{commit}", "--")
                if out:
                    return parse_ts(out)
        return None

    def _inside(self, base: Path | None, path: str) -> Path | None:
        """``base / path`` when it stays inside ``base`` (no ``..`` escapes), else None."""
        if base is None:
            return None
        key = ("inside", str(base), path)
        if key in self._cache:
            return self._cache[key]  # type: ignore[return-value]
        root_key = ("root", str(base))
        root = self._cache.get(root_key)
        if root is None:
            self._cache[root_key] = root = str(base.resolve())
        # normpath, not resolve(): no system call per file, and ``..`` is still caught.
        target = os.path.normpath(os.path.join(str(root), path))
        inside = target == root or target.startswith(str(root).rstrip(os.sep) + os.sep)
        found = Path(target) if inside else None
        if len(self._cache) > _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _git_change(self, base: Path, target: Path, before: datetime) -> datetime | None:
        if not self._is_git(base):
            return None
        try:
            rel = target.relative_to(base.resolve()).as_posix()
        except ValueError:
            return None
        return self._git_index(base, before).get(rel)

    def _git_index(self, base: Path, before: datetime) -> dict[str, datetime]:
        """Last change of every file git knows under ``base``, as of ``before``.

        One ``git log --name-only`` walk per review instead of one git process
        per file: a spec set lists thousands of files.
        """
        return self._git_dates(base, last=True, until=before)

    def _git_first(self, base: Path) -> dict[str, datetime]:
        """The first commit date of every file git knows under ``base``, from one log walk."""
        return self._git_dates(base, last=False, until=None)

    def _git_dates(self, base: Path, *, last: bool, until: datetime | None) -> dict[str, datetime]:
        """Per file under ``base``: its newest (``last``) or oldest commit date, cached."""
        key = ("git-dates", str(base), str(last), fmt_ts(until) if until else "")
        cached = self._cache.get(key)
        if cached is None:
            args = ["log", "--format=%x00%cI", "--name-only", "--no-renames", "--relative"]
            if until is not None:
                args.append(f"--until={fmt_ts(until)}")
            out = self._git(base, *args, timeout=max(self.git_timeout, 120.0))
            index: dict[str, datetime] = {}
            when: datetime | None = None
            # The log runs newest first: the first date seen is the last change.
            for line in (out or "").splitlines():
                if line.startswith("\x00"):
                    when = parse_ts(line[1:])
                elif line and when is not None:
                    index[line] = (
                        index.get(line, when) if last else min(when, index.get(line, when))
                    )
            self._cache[key] = cached = index
        return cached  # type: ignore[return-value]

    def _mtime(self, target: Path, before: datetime) -> datetime | None:
        try:
            changed = datetime.fromtimestamp(int(target.stat().st_mtime), tz=UTC)
        except OSError:
            return None
        return changed if changed <= before else None

    def _is_git(self, base: Path) -> bool:
        key = ("is-git", str(base))
        if key not in self._cache:
            self._cache[key] = self._git(base, "rev-parse", "--is-inside-work-tree") == "true"
        return bool(self._cache[key])

    def _git(self, base: Path, *args: str | Path, timeout: float | None = None) -> str | None:
        """Run git in ``base``; its trimmed output, or None when it fails or times out."""
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        try:
            done = subprocess.run(
                ["git", "-C", str(base), "--no-pager", *map(str, args)],
                capture_output=True,
                text=True,
                timeout=timeout or self.git_timeout,
                env=env,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("git %s in %s failed: %s", args[0], base, exc)
            return None
        return done.stdout.strip() if done.returncode == 0 else None
