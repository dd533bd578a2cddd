"""Moments in time as batchrun writes and reads them: always aware, always UTC, ISO 8601.

Reports, the journal, ADF's wire format and the recovery manifest all carry times as text; this
is the one place that turns them into aware datetimes and back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["Now", "parse_time", "utc_iso", "utc_now"]

Now = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc_iso(
    moment: datetime, *, timespec: Literal["auto", "seconds", "milliseconds"] = "milliseconds"
) -> str:
    """``2026-11-26T02:00:00.123Z``: RFC 3339 in UTC, as the report contract shows.

    ``timespec`` as :meth:`datetime.isoformat` takes it: ``auto`` leaves out a zero fraction.
    """
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_time(value: Any, *, naive_is_utc: bool = False) -> datetime | None:
    """An ISO 8601 text as an aware datetime; None when it is not one.

    ADF leaves out the zone on some timestamps that are UTC (``naive_is_utc``); a report or a
    user's text without a zone is ambiguous, so it is not a time.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC) if naive_is_utc else None
    return moment
