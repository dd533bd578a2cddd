"""Per-subscription pacing of createRun requests against ARM's write budget.

ARM meters writes per subscription (and principal) with a token bucket: a burst (200) refilled at a
steady rate (10/s); sovereign clouds still use a fixed hourly budget (1,200/hour). Every write
response reports what is left in ``x-ms-ratelimit-remaining-subscription-writes`` (and, for all
principals together, ``-global-writes``: the smaller counts). A request sent to an empty bucket
comes back 429 with ``Retry-After``.

The algorithm, per subscription, with no knowledge of which model the cloud uses:

1. **Available tokens** are estimated as ``h + r * (now - t) - in_flight``: the last header ``h``
   (dated ``t``, when its request left: ARM counted the bucket as it admitted it), plus what has
   refilled since at the estimated rate ``r``, minus requests already sent that the header could
   not yet count. Every response replaces the estimate with the truth,
   so an error in ``r`` only lives for one round trip.
2. **The refill rate** ``r`` is the slope of ``h + consumed`` over a sliding window of responses,
   where ``consumed`` counts the responses that spent a token (everything but 429s): what the bucket
   gained is what it shows now plus what we took out. A fixed hourly budget shows a slope of about
   zero, so ``r`` is 0 there.
3. **Dispatch** goes ahead while the estimate stays above a small reserve (the burst is spent at
   full speed). The reserve is kept for the requests that follow: a subscription's last few
   requests (when its batch says how many are left, :meth:`SubscriptionPacer.expect`) spend it,
   but only the tokens the last header counted, nothing extrapolated, each as soon as one is
   free. Below it, the next request waits until the estimate says a token has refilled: the pace
   settles at the refill rate before the bucket is empty, not after a 429. With no usable rate
   yet (start-up, or the hourly model exhausted) it waits for the next response, or, with
   nothing in flight, sends one probe after an interval, which grows only while the rate says
   nothing refills; the probe's header (or its 429) tells the truth.
4. **A 429** pauses the subscription until ``Retry-After`` and sets the estimate to zero.

Subscriptions have separate pacers, so a throttled one never holds up another.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from batchrun.waits import first_of

if TYPE_CHECKING:
    from batchrun.errors import ApiError

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# the refill rate is fitted over this many seconds of answers: long enough to average out the
# order in which concurrent answers arrive, short enough to follow a change of rate in seconds
_RATE_WINDOW_S = 8.0
# over a shorter span the headers' whole numbers make the slope noise
_RATE_MIN_SPAN_S = 1.0
# at most this many answers in the window, so a fast batch bounds the fit's memory and cost
_RATE_POINTS = 512
# the fit is the pacer's main cost per request: redo it once every this many answers
_REFIT_EVERY = 16
# with the budget empty and nothing refilling (the hourly model), one probe goes after this
# interval, doubling up to the maximum while the budget stays empty: an empty budget costs one
# request per interval, not a stream of 429s
_PROBE_MIN_S = 0.5
_PROBE_MAX_S = 30.0
# tokens left unspent: other clients of the subscription and the header's lag make the estimate
# a little optimistic, and a few spare tokens turn that error into a short wait, not a 429
_RESERVE = 3
# in flight before any header came back; any real budget allows this many
_BEFORE_FIRST_ANSWER = 4
# waits shorter than this are not worth a timer (and could never advance a float clock)
_GRANULARITY_S = 0.001


class PacerClosed(Exception):
    """The batch is stopping: no more requests may be sent."""


class RateEstimator:
    """The refill rate of a token bucket, from ``(time, remaining)`` observations."""

    def __init__(self) -> None:
        self._points: deque[tuple[float, float]] = deque(maxlen=_RATE_POINTS)
        self._consumed = 0
        self._rate: float | None = None
        self._stale = False
        self._unfitted = 0

    def observe(self, now: float, remaining: int, *, consumed: bool) -> None:
        if consumed:
            self._consumed += 1
        self._points.append((now, remaining + self._consumed))
        while self._points and now - self._points[0][0] > _RATE_WINDOW_S:
            self._points.popleft()
        self._unfitted += 1
        if self._rate is None or self._unfitted >= _REFIT_EVERY:
            self._stale = True

    def rate(self) -> float | None:
        """Tokens per second, or None while the window is too short to say."""
        if self._stale:
            self._rate = self._fit()
            self._stale = False
            self._unfitted = 0
        return self._rate

    def _fit(self) -> float | None:
        if len(self._points) < 2:
            return None
        span = self._points[-1][0] - self._points[0][0]
        if span < _RATE_MIN_SPAN_S:
            return None
        # least squares: robust to the reordering of responses that concurrency causes
        n = len(self._points)
        mean_t = sum(t for t, _ in self._points) / n
        mean_v = sum(v for _, v in self._points) / n
        var = sum((t - mean_t) ** 2 for t, _ in self._points)
        cov = sum((t - mean_t) * (v - mean_v) for t, v in self._points)
        return max(0.0, cov / var) if var > 0 else None


class SubscriptionPacer:
    """Decides when the next write to one subscription may leave."""

    def __init__(self, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._rates = RateEstimator()
        self._remaining: float | None = None
        self._seen_at = 0.0
        self._capacity = 0
        self._in_flight = 0
        self._paused_until = 0.0
        self._probe_s = _PROBE_MIN_S
        self._last_send = 0.0
        self._changed = asyncio.Event()
        self._turn = asyncio.Lock()
        self._closed = False
        # turns asked for and not yet given, and the requests that will ask later (None: unknown)
        self._waiting = 0
        self._backlog: Callable[[], int] | None = None

    def expect(self, backlog: Callable[[], int]) -> None:
        """``backlog()`` says how many more requests will ask for a turn besides those asking
        now: when they are few enough, they spend the reserve (see :meth:`delay`)."""
        self._backlog = backlog

    def available(self, now: float) -> float | None:
        """Estimated tokens left now, or None before any header was seen."""
        if self._remaining is None:
            return None
        rate = self._rates.rate() or 0.0
        refilled = self._remaining + rate * max(0.0, now - self._seen_at)
        if self._capacity:
            refilled = min(refilled, float(self._capacity))
        return refilled - self._in_flight

    def delay(self, now: float) -> float | None:
        """Seconds to wait before the next send: 0 to go now, None to wait for a response."""
        if now < self._paused_until:
            return self._paused_until - now
        tokens = self.available(now)
        if tokens is None:
            # nothing known yet: a few requests find out what the budget is
            return None if self._in_flight >= _BEFORE_FIRST_ANSWER else 0.0
        if tokens >= _RESERVE + 1 or self._last_turns():
            return 0.0
        rate = self._rates.rate()
        if rate and tokens >= 1 and self._capped(now, rate):
            # long enough has passed for the reserve to refill, yet the bucket was never seen
            # to hold more (a batch that starts while another client keeps it nearly empty):
            # waiting longer gains nothing, and waiting for the reserve would be for ever
            return 0.0
        if rate:
            return max(0.0, (_RESERVE + 1 - tokens) / rate)
        if self._in_flight:
            return None
        # nothing in flight and no refill seen: probe, backing off while the budget stays empty
        wait = max(self._last_send, self._seen_at) + self._probe_s - now
        return max(0.0, wait)

    def _last_turns(self) -> bool:
        """Whether only the last few requests are still to come, and a token the last header
        counted is still unclaimed.

        The reserve is kept for the requests that follow; the last few have none after them.
        Only what the header counted is spent (less what was sent since), none of the refill
        extrapolated from the rate: an estimate off by a token cannot make a 429 here. They go
        one by one as counted tokens allow, not once all of them fit: with two in flight, all
        fitting waits a round trip for nothing. A subscription that ends 3 tokens early at 20/s
        ends 0.15 s sooner.
        """
        if self._backlog is None or self._remaining is None:
            return False
        left = self._waiting + self._backlog()
        return left <= _RESERVE and self._remaining - self._in_flight >= 1

    def _capped(self, now: float, rate: float) -> bool:
        """Whether the refill since the last header would be past the reserve but for the
        largest budget ever seen."""
        refilled = self._remaining or 0.0
        refilled += rate * max(0.0, now - self._seen_at) - self._in_flight
        return bool(self._capacity) and refilled >= _RESERVE + 1

    async def acquire(self, *, unless: Callable[[], bool] | None = None) -> bool:
        """Wait for this subscription's turn; the caller must then report, on every path, how the
        request went (``completed``/``throttled_for``/``abandoned``) or that it was not sent
        (``unused``): a turn never reported counts as in flight for ever. Raises
        :class:`PacerClosed` once closed.

        ``unless`` is asked whenever the wait may end (after each answer, pause or timer): when
        it says true the wait ends without a turn and ``acquire`` returns False, so a request
        that must not leave any more (its run held back) does not queue behind the others."""
        self._waiting += 1
        try:
            return await self._take_turn(unless)
        finally:
            self._waiting -= 1

    async def _take_turn(self, unless: Callable[[], bool] | None) -> bool:
        async with self._turn:
            while not self._closed:
                if unless is not None and unless():
                    return False
                now = self._clock()
                wait = self.delay(now)
                if wait is not None and wait < _GRANULARITY_S:
                    break
                self._changed.clear()
                if wait is None:
                    await self._changed.wait()
                else:
                    await first_of(self._changed.wait(), self._sleep(wait))
            if self._closed:
                raise PacerClosed
            self._in_flight += 1
            self._last_send = self._clock()
            return True

    def close(self) -> None:
        """No more sends: every waiter, now and later, gets :class:`PacerClosed`."""
        self._closed = True
        self._changed.set()

    def now(self) -> float:
        """The pacer's clock: a request's ``sent_at`` for :meth:`completed` is read from it."""
        return self._clock()

    def completed(self, remaining: int | None, *, sent_at: float | None = None) -> None:
        """A write answered (any status but 429), with its remaining-writes header if any.

        ``sent_at`` (:meth:`now` as the request left) dates the header: ARM counts the bucket
        as it admits the request, which is after the request left and, for createRun, long
        before its answer (the service's own work is most of the round trip). Dated by the
        answer, every header was a round trip of refill short: at 20/s and 25 ms, half a token
        the pacer waited for and never spent. The reserve covers the time the request took to
        arrive. A header older than the one kept (a request sent earlier, answered later) only
        feeds the rate: it cannot count the requests sent after it that have answered since.
        """
        self._in_flight = max(0, self._in_flight - 1)
        if remaining is not None:
            now = self._clock()
            # the rate's slope is the same by either date; the answers' span is what warms it up
            self._rates.observe(now, remaining, consumed=True)
            at = now if sent_at is None else min(sent_at, now)
            if at >= self._seen_at or self._remaining is None:
                self._remaining = float(remaining)
                self._seen_at = at
            self._capacity = max(self._capacity, remaining)
            if remaining > _RESERVE:
                self._probe_s = _PROBE_MIN_S
            elif self._rates.rate() == 0.0:
                # a probe found the budget still empty and nothing refilling: back off. A rate
                # not known yet is not nothing refilling: the burst's last answers, before a
                # second of them, used to double the interval each, a stall of a second or more
                self._probe_s = min(_PROBE_MAX_S, self._probe_s * 2)
        self._changed.set()

    def throttled_for(self, retry_after: float | None) -> None:
        """A 429: nothing was spent, the bucket is empty, pause until Retry-After."""
        self._in_flight = max(0, self._in_flight - 1)
        now = self._clock()
        self._remaining = 0.0
        self._seen_at = now
        self._paused_until = max(self._paused_until, now + (retry_after or self._probe_s))
        self._changed.set()

    def failed(self, error: ApiError) -> None:
        """A request that raised: a 429 pauses until its Retry-After; any other failure gives
        the turn back without a budget reading (what it spent is not known)."""
        if error.status == 429:
            self.throttled_for(error.retry_after)
        else:
            self.abandoned()

    def abandoned(self) -> None:
        """A send that got no answer (transport error): it may or may not have spent a token."""
        self._in_flight = max(0, self._in_flight - 1)
        self._changed.set()

    def unused(self) -> None:
        """The turn taken by ``acquire`` was not used: nothing was sent (the batch stopped, or
        the run was held back after all)."""
        self._in_flight = max(0, self._in_flight - 1)
        self._changed.set()


class Pacers:
    """One pacer per subscription, made on first use."""

    def __init__(self, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._by_subscription: dict[str, SubscriptionPacer] = {}

    def __getitem__(self, subscription: str) -> SubscriptionPacer:
        pacer = self._by_subscription.get(subscription)
        if pacer is None:
            pacer = SubscriptionPacer(clock=self._clock, sleep=self._sleep)
            self._by_subscription[subscription] = pacer
        return pacer

    def close(self) -> None:
        for pacer in self._by_subscription.values():
            pacer.close()
