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

    def ago(self, delta: timedelta) -> str:
        """The stored-form instant ``delta`` before ``now``."""
        return self.ts(self.now - delta)
