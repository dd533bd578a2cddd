"""ARM request limits: token buckets (public cloud) and hourly windows (sovereign clouds).

Every limiter reads an injected monotonic clock, so tests move time instead of sleeping.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from batchrun.emulator.clock import Clock
    from batchrun.emulator.config import Settings

Monotonic = Callable[[], float]

# the all-principals buckets are this much larger than one principal's (ARM documents it for
# writes; reads are taken to scale the same way)
GLOBAL_FACTOR = 15


class Limiter(Protocol):
    def has_token(self) -> bool: ...

    def take(self) -> None: ...

    def remaining(self) -> int: ...

    def retry_after_s(self) -> int:
        """Whole seconds until one request would be allowed again (at least 1)."""
        ...


class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``refill_per_s``; a request costs one."""

    __slots__ = ("_capacity", "_clock", "_last", "_refill", "_tokens")

    def __init__(self, *, capacity: float, refill_per_s: float, clock: Monotonic) -> None:
        self._capacity = float(capacity)
        self._refill = refill_per_s
        self._clock = clock
        self._tokens = float(capacity)
        self._last = clock()

    def _update(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._refill)
        self._last = now

    def has_token(self) -> bool:
        self._update()
        return self._tokens >= 1.0

    def take(self) -> None:
        self._update()
        self._tokens -= 1.0

    def remaining(self) -> int:
        self._update()
        return max(0, math.floor(self._tokens))

    def retry_after_s(self) -> int:
        self._update()
        return max(1, math.ceil((1.0 - self._tokens) / self._refill))


class HourlyWindow:
    """``limit`` requests per window; the window opens at the first request and then resets."""

    __slots__ = ("_clock", "_length", "_limit", "_start", "_used")

    def __init__(self, *, limit: int, clock: Monotonic, window_s: float = 3600.0) -> None:
        self._limit = limit
        self._length = window_s
        self._clock = clock
        self._start: float | None = None
        self._used = 0

    def _update(self) -> None:
        now = self._clock()
        if self._start is None or now >= self._start + self._length:
            self._start = now
            self._used = 0

    def has_token(self) -> bool:
        self._update()
        return self._used < self._limit

    def take(self) -> None:
        self._update()
        self._used += 1

    def remaining(self) -> int:
        self._update()
        return max(0, self._limit - self._used)

    def retry_after_s(self) -> int:
        self._update()
        assert self._start is not None
        return max(1, math.ceil(self._start + self._length - self._clock()))


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    headers: dict[str, str]
    retry_after_s: int = 0
    # which budget ran out: "subscription" or "global"
    exhausted: str = ""


class ArmLimits:
    """Read and write budgets per subscription, plus the global buckets shared by all principals.

    With ``global_bucket_per_subscription`` (ARM's model) a subscription's ordinary buckets are
    per principal (the caller's token) and its global buckets are shared by every principal of
    that subscription. Without it (the emulator's older model) the ordinary buckets are per
    subscription and one global write bucket serves the whole emulator. Global reads are always
    per subscription. Sovereign clouds' hourly windows have no global buckets.
    """

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock.monotonic
        self._per_subscription = settings.global_bucket_per_subscription
        self._writes: dict[tuple[str, str], Limiter] = {}
        self._reads: dict[tuple[str, str], Limiter] = {}
        self._global_writes: dict[str, Limiter] = {}
        self._global_reads: dict[str, Limiter] = {}

    def _limiter(
        self, table: dict[tuple[str, str], Limiter], subscription: str, principal: str, write: bool
    ) -> Limiter:
        key = (subscription.casefold(), principal if self._per_subscription else "")
        limiter = table.get(key)
        if limiter is None:
            s = self._settings
            if s.hourly:
                limiter = HourlyWindow(
                    limit=s.hourly_writes if write else s.hourly_reads, clock=self._clock
                )
            else:
                limiter = TokenBucket(
                    capacity=s.write_burst if write else s.read_burst,
                    refill_per_s=s.write_refill if write else s.read_refill,
                    clock=self._clock,
                )
            table[key] = limiter
        return limiter

    def _global(self, table: dict[str, Limiter], subscription: str, write: bool) -> Limiter | None:
        s = self._settings
        if s.hourly:
            return None
        key = subscription.casefold() if self._per_subscription or not write else ""
        limiter = table.get(key)
        if limiter is None:
            limiter = table[key] = TokenBucket(
                capacity=(s.write_burst if write else s.read_burst) * GLOBAL_FACTOR,
                refill_per_s=(s.write_refill if write else s.read_refill) * GLOBAL_FACTOR,
                clock=self._clock,
            )
        return limiter

    def write(self, subscription: str, principal: str = "") -> Admission:
        return self._admit(subscription, principal, write=True)

    def read(self, subscription: str, principal: str = "") -> Admission:
        return self._admit(subscription, principal, write=False)

    def _admit(self, subscription: str, principal: str, *, write: bool) -> Admission:
        table, shared_table = (
            (self._writes, self._global_writes) if write else (self._reads, self._global_reads)
        )
        kind = "writes" if write else "reads"
        bucket = self._limiter(table, subscription, principal, write)
        shared = self._global(shared_table, subscription, write)
        exhausted = ""
        if not bucket.has_token():
            exhausted = "subscription"
        elif shared is not None and not shared.has_token():
            exhausted = "global"
        if not exhausted:
            bucket.take()
            if shared is not None:
                shared.take()
        headers = {f"x-ms-ratelimit-remaining-subscription-{kind}": str(bucket.remaining())}
        if shared is not None:
            headers[f"x-ms-ratelimit-remaining-subscription-global-{kind}"] = str(
                shared.remaining()
            )
        if not exhausted:
            return Admission(True, headers)
        limiter = bucket if exhausted == "subscription" or shared is None else shared
        return Admission(False, headers, limiter.retry_after_s(), exhausted)
