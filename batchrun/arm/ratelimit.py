"""What ARM's response headers say about pacing: remaining request budget and Retry-After."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

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
    def remaining_reads(self) -> int | None:
        """The smaller of the per-principal and all-principals read budgets that were reported."""
        present = [n for n in (self.reads, self.global_reads) if n is not None]
        return min(present) if present else None

    @property
    def remaining_writes(self) -> int | None:
        """The smaller of the per-principal and all-principals write budgets that were reported."""
        present = [n for n in (self.writes, self.global_writes) if n is not None]
        return min(present) if present else None

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
