"""What ARM's response headers say about time: remaining request budget, Retry-After, and the
server's clock (``Date``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

_WRITES = "x-ms-ratelimit-remaining-subscription-writes"
_GLOBAL_WRITES = "x-ms-ratelimit-remaining-subscription-global-writes"
_READS = "x-ms-ratelimit-remaining-subscription-reads"
_GLOBAL_READS = "x-ms-ratelimit-remaining-subscription-global-reads"
_INTEGER = re.compile(r"\d+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    # aiohttp's headers are case-insensitive already; plain dicts (tests, fakes) are not.
    return {name.lower(): value for name, value in headers.items()}


def _count(value: str | None) -> int | None:
    if value is None or not _INTEGER.fullmatch(value.strip()):
        return None
    return int(value.strip())


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Remaining ARM requests for the subscription, from the ``x-ms-ratelimit-*`` headers."""

    writes: int | None = None
    global_writes: int | None = None
    reads: int | None = None
    global_reads: int | None = None

    @property
    def remaining_writes(self) -> int | None:
        """The smaller of the per-principal and all-principals write budgets that were reported."""
        return _smaller(self.writes, self.global_writes)

    @property
    def remaining_reads(self) -> int | None:
        """The smaller of the per-principal and all-principals read budgets that were reported."""
        return _smaller(self.reads, self.global_reads)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimits:
        """Read the budget headers; a missing or unparsable value is ``None``."""
        lowered = _lower(headers)
        return cls(
            writes=_count(lowered.get(_WRITES)),
            global_writes=_count(lowered.get(_GLOBAL_WRITES)),
            reads=_count(lowered.get(_READS)),
            global_reads=_count(lowered.get(_GLOBAL_READS)),
        )


def _smaller(own: int | None, shared: int | None) -> int | None:
    present = [n for n in (own, shared) if n is not None]
    return min(present) if present else None


def server_date(headers: Mapping[str, str]) -> datetime | None:
    """The server's clock when it answered, from ``Date`` (whole seconds, truncated); ``None``
    when absent or not an HTTP-date."""
    value = _lower(headers).get("date", "").strip()
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse_retry_after(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds the server asks us to wait, or ``None`` when it did not say (or said nonsense).

    Precedence as in azure-core: ``retry-after-ms``, ``x-ms-retry-after-ms`` (milliseconds), then
    ``Retry-After`` as delta-seconds or an HTTP-date (a date in the past means "now": 0).
    """
    lowered = _lower(headers)
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = lowered.get(name, "").strip()
        if _NUMBER.fullmatch(value):
            return float(value) / 1000
    value = lowered.get("retry-after", "").strip()
    if not value:
        return None
    if _NUMBER.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    seconds = (when - now).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None
