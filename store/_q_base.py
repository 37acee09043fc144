"""The base every query mixin of ``BacklogView`` builds on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from store._dialect import Dialect

Row = dict[str, Any]


class QueryBase:
    """What a query mixin may use; ``BacklogView`` provides it."""

    dialect: Dialect

    @property
    def now(self) -> datetime:
        raise NotImplementedError

    @property
    def now_ts(self) -> str:
        raise NotImplementedError

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        raise NotImplementedError

    def iter_rows(self, sql: str, params: dict[str, Any] | None = None) -> Iterator[Row]:
        raise NotImplementedError

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def ts(self, value: datetime) -> str:
        raise NotImplementedError

    @staticmethod
    def may_be(t: str, *states: str) -> str:
        """An indexed condition on ``{tasks}`` row ``t`` that every row whose as-of state
        is one of ``states`` ('pending', 'running') meets: its stored status, or a
        timestamp after ``now`` that makes the stored status not yet true. Put it next
        to ``t.state = ...`` so the database seeks the few candidate rows on the status
        and as-of indexes instead of rebuilding every row's state; the result is the same.
        """
        terms = []
        for state in states:
            if state == "pending":
                terms.append(
                    f"{t}.status = 'pending'"
                    f" OR COALESCE({t}.started_at, {t}.updated_at, {t}.created_at) > :now"
                )
            elif state == "running":
                terms.append(
                    f"{t}.status = 'running'"
                    f" OR COALESCE({t}.finished_at, {t}.updated_at, {t}.created_at) > :now"
                )
            else:
                raise ValueError(f"no indexed condition for state {state!r}")
        return "(" + " OR ".join(terms) + ")"

    def ago(self, delta: timedelta) -> str:
        """The stored-form instant ``delta`` before ``now``."""
        return self.ts(self.now - delta)
