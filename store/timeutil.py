"""Time handling shared by the store, the engine and the rules.

Every timestamp the reviewer stores is UTC text in one fixed-width form,
``YYYY-MM-DDTHH:MM:SSZ``, so that SQL compares them as strings and indexes on
them work. Naive inputs mean UTC (CONTRACT); aware inputs are converted.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


# The years a stored timestamp may lie in: four digits, so text order is time order.
MIN_YEAR, MAX_YEAR = 1970, 9999


def parse_ts(value: str | datetime) -> datetime:
    """Parse an ISO 8601 instant; a naive one means UTC. Raises ValueError.

    Also read: a lowercase ``t``/``z``, an offset without a colon (``+0200``)
    and, as a last resort, an RFC 2822 date (``Sun, 01 Mar 2026 12:00:00 +0000``).
    """
    if isinstance(value, datetime):
        dt = value
    else:
        text = value.strip()
        if not text:
            raise ValueError("empty timestamp")
        iso = text[:10] + text[10:11].upper() + text[11:]
        if iso.endswith(("Z", "z")):
            iso = iso[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(iso)
        except ValueError:
            dt = _rfc2822(text)
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:
        # 9999-12-31T23:59:59-05:00 is past the last instant a datetime holds.
        raise ValueError(f"{value} is outside the years {MIN_YEAR}-{MAX_YEAR}") from None


def _rfc2822(text: str) -> datetime:
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        raise ValueError(f"invalid timestamp {text!r}") from None


def fmt_ts(value: datetime) -> str:
    """The stored form of an instant."""
    return parse_ts(value).strftime(TS_FORMAT)


def norm_ts(value: str | datetime | None) -> str | None:
    """Normalise an optional timestamp to the stored form; ValueError outside 1970-9999."""
    if value is None or value == "":
        return None
    dt = parse_ts(value)
    if not MIN_YEAR <= dt.year <= MAX_YEAR:
        raise ValueError(f"year {dt.year} is outside {MIN_YEAR}-{MAX_YEAR}")
    return fmt_ts(dt)


def utcnow() -> datetime:
    """The current instant, truncated to whole seconds like stored timestamps."""
    return datetime.now(UTC).replace(microsecond=0)


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Parse ``90s``, ``15m``, ``2h``, ``7d``, ``2w`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a duration; write one like 90s, 15m, 2h, 7d or 2w")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(value)
        if not m:
            raise ValueError(
                f"{value!r} is not a duration; write a number and a unit, "
                "like 90s, 15m, 2h, 7d or 2w"
            )
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{value!r} is not a duration: it must be finite and not negative")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{value!r} is too long a duration") from None


def fmt_duration(td: timedelta) -> str:
    """A short human form: 3d4h, 45m, 12s."""
    secs = int(td.total_seconds())
    if secs < 0:
        return "-" + fmt_duration(-td)
    days, rem = divmod(secs, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{seconds}s"


def parse_config_duration(value: str | int | float | timedelta) -> timedelta:
    """A duration written in config: ``15m``, ``7d``; a bare number is refused.

    ``max_idle = 5`` could mean seconds, minutes or days; the unit is required."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        n = f"{value:g}"
        raise ValueError(f"{value!r} is a number without a unit; write {n}s or {n}m (or h, d, w)")
    return parse_duration(value)


# A pydantic field type for config durations: "15m", "7d" (a bare number is refused).
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_config_duration),
    PlainSerializer(fmt_duration, return_type=str),
]
