"""ARM request limits: token buckets (public cloud) and hourly windows (sovereign clouds).

Every limiter reads an injected monotonic clock, so tests move time instead of sleeping.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from batchrun.emulator.clock import Clock
from batchrun.emulator.config import Settings

Monotonic = Callable[[], float]

GLOBAL_FACTOR = 15  # the all-principals write bucket is this much larger than one subscription's


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
    """Per-subscription read and write budgets, plus the global write bucket shared by all."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock.monotonic
        self._writes: dict[str, Limiter] = {}
        self._reads: dict[str, Limiter] = {}
        self._global: Limiter | None = None
        if not settings.hourly:
            self._global = TokenBucket(
                capacity=settings.write_burst * GLOBAL_FACTOR,
                refill_per_s=settings.write_refill * GLOBAL_FACTOR,
                clock=self._clock,
            )

    def _limiter(self, table: dict[str, Limiter], subscription: str, write: bool) -> Limiter:
        key = subscription.casefold()
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

    def write(self, subscription: str) -> Admission:
        bucket = self._limiter(self._writes, subscription, write=True)
        shared = self._global
        exhausted = ""
        if not bucket.has_token():
            exhausted = "subscription"
        elif shared is not None and not shared.has_token():
            exhausted = "global"
        if not exhausted:
            bucket.take()
            if shared is not None:
                shared.take()
        headers = {"x-ms-ratelimit-remaining-subscription-writes": str(bucket.remaining())}
        if shared is not None:
            headers["x-ms-ratelimit-remaining-subscription-global-writes"] = str(shared.remaining())
        if not exhausted:
            return Admission(True, headers)
        limiter = bucket if exhausted == "subscription" or shared is None else shared
        return Admission(False, headers, limiter.retry_after_s(), exhausted)

    def read(self, subscription: str) -> Admission:
        bucket = self._limiter(self._reads, subscription, write=False)
        allowed = bucket.has_token()
        if allowed:
            bucket.take()
        headers = {"x-ms-ratelimit-remaining-subscription-reads": str(bucket.remaining())}
        if allowed:
            return Admission(True, headers)
        return Admission(False, headers, bucket.retry_after_s(), "subscription")
