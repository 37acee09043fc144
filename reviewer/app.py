"""Wiring: a config, the store it names, and an engine over them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from reviewer.config import Config
from reviewer.engine import Engine
from store import DaemonLockedError, Store, open_store
from store.state import ReviewerState
from store.timeutil import utcnow
from store.workspace import Workspace


class App:
    """An opened reviewer: config, store, state and engine; a context manager."""

    def __init__(self, config: Config, store: Store, clock: Callable[[], datetime] = utcnow):
        self.config = config
        self.store = store
        self.state = ReviewerState(store)
        self.clock = clock
        self.engine = Engine(config, store, clock=clock)

    @classmethod
    def from_config(cls, config: Config, clock: Callable[[], datetime] = utcnow) -> App:
        workspace = Workspace(
            specs_dir=config.resolve(config.reviewer.specs_dir),
            repo_dir=config.resolve(config.reviewer.repo_dir),
        )
        r = config.reviewer
        mirror = config.resolve(r.http_mirror)
        http_policy = {
            "timeout_s": r.http_timeout.total_seconds(),
            "attempts": r.http_attempts,
            "budget": r.http_retry_budget,
            "max_retry_after_s": r.http_max_retry_after.total_seconds(),
            "page_size": r.http_page_size,
        }
        store = open_store(
            config.store_url,
            workspace=workspace,
            mirror_path=str(mirror) if mirror else None,
            http_policy=http_policy,
        )
        return cls(config, store, clock)

    def mark_interrupted_runs(self) -> int:
        """Runs a killed process left ``running``, marked ``interrupted``; how many.

        Only when no daemon reviews this store (its own run may be under way): the
        daemon lock is taken for the moment it takes. The write is skipped when no run
        is ``running``, so a read-only command never waits for the write lock.
        """
        if not self.state.count_running():
            return 0
        try:
            self.store.acquire_daemon_lock()
        except DaemonLockedError:
            return 0
        try:
            with self.store.transaction():
                return self.state.mark_interrupted()
        finally:
            self.store.release_daemon_lock()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_silence(rule: str, subject: str, until: datetime, now: datetime) -> None:
    """Refuse a silence that names no rule or no subject, or has already expired.

    Raises ``ValueError("<field>: why")``; the CLI and the API both ask here."""
    import fnmatch

    from rules import REGISTRY

    if not rule.strip() or not any(fnmatch.fnmatchcase(r, rule) for r in REGISTRY):
        raise ValueError(f"rule: {rule!r} matches no rule; known rules: {', '.join(REGISTRY)}")
    if not subject.strip():
        raise ValueError("subject: must name a subject (a glob, like 'task-12*')")
    if until <= now:
        raise ValueError("until: must be in the future")
