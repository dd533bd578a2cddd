"""The pacer, driven by a fake clock: no real time passes in these tests."""

from __future__ import annotations

import asyncio

import pytest

from batchrun.arm.pacing import Pacers, RateEstimator, SubscriptionPacer
from tests.helpers.clock import FakeTime


class Bucket:
    """A token bucket like ARM's, on the fake clock."""

    def __init__(self, time: FakeTime, *, burst: int, refill: float) -> None:
        self.time = time
        self.burst = burst
        self.refill = refill
        self.tokens = float(burst)
        self.at = time.monotonic()
        self.rejected = 0

    def take(self) -> int | None:
        self.tokens = min(self.burst, self.tokens + (self.time.monotonic() - self.at) * self.refill)
        self.at = self.time.monotonic()
        if self.tokens < 1:
            self.rejected += 1
            return None
        self.tokens -= 1
        return int(self.tokens)

    def answer(self, pacer: SubscriptionPacer) -> None:
        """One request arrives: the pacer hears the remaining-writes header, or a 429."""
        remaining = self.take()
        if remaining is None:
            pacer.throttled_for(1.0)
        else:
            pacer.completed(remaining)


def make_pacer(time: FakeTime) -> SubscriptionPacer:
    return SubscriptionPacer(clock=time.monotonic, sleep=time.sleep)


def test_rate_estimator_needs_a_second_of_data() -> None:
    rates = RateEstimator()
    rates.observe(0.0, 100, consumed=True)
    rates.observe(0.5, 100, consumed=True)
    assert rates.rate() is None


def test_rate_estimator_reads_refill_from_remaining_plus_consumed() -> None:
    rates = RateEstimator()
    remaining = 150.0
    for step in range(40):
        # one request every 0.05 s spends a token; 10 tokens/s come back
        remaining += 10 * 0.05 - 1
        rates.observe(step * 0.05, int(remaining), consumed=True)
    rate = rates.rate()
    assert rate is not None
    assert rate == pytest.approx(10, abs=1.5)


def test_no_header_yet_means_a_few_requests_find_out() -> None:
    time = FakeTime()
    pacer = make_pacer(time)
    assert pacer.delay(time.monotonic()) == 0.0
    pacer._in_flight = 3
    assert pacer.delay(time.monotonic()) == 0.0
    pacer._in_flight = 4
    assert pacer.delay(time.monotonic()) is None


def test_plenty_of_budget_means_go() -> None:
    time = FakeTime()
    pacer = make_pacer(time)
    pacer.completed(150)
    assert pacer.delay(time.monotonic()) == 0.0


def test_no_dispatch_when_the_header_says_zero_and_requests_are_in_flight() -> None:
    time = FakeTime()
    pacer = make_pacer(time)
    pacer._in_flight = 2
    pacer.completed(0)
    assert pacer.delay(time.monotonic()) is None


def test_zero_budget_with_nothing_in_flight_probes_later_not_now() -> None:
    time = FakeTime()
    pacer = make_pacer(time)
    pacer.completed(0)
    wait = pacer.delay(time.monotonic())
    assert wait is not None
    assert wait > 0


def test_429_pauses_for_retry_after() -> None:
    time = FakeTime()
    pacer = make_pacer(time)
    pacer._in_flight = 1
    pacer.throttled_for(7.0)
    assert pacer.delay(time.monotonic()) == pytest.approx(7.0)
    time.advance(7.0)
    # after the pause a probe may go: the estimate is empty but nothing is in flight
    assert pacer.delay(time.monotonic()) is not None


def test_429_pauses_only_its_own_subscription() -> None:
    time = FakeTime()
    pacers = Pacers(clock=time.monotonic, sleep=time.sleep)
    pacers["a"]._in_flight = 1
    pacers["a"].throttled_for(30.0)
    assert pacers["a"].delay(time.monotonic()) == pytest.approx(30.0)
    assert pacers["b"].delay(time.monotonic()) == 0.0


async def test_spends_the_burst_then_settles_at_the_refill_rate() -> None:
    time = FakeTime()
    pacer = make_pacer(time)
    bucket = Bucket(time, burst=100, refill=50.0)
    sent_at: list[float] = []
    for _ in range(600):
        await pacer.acquire()
        sent_at.append(time.monotonic())
        bucket.answer(pacer)
    # the burst leaves at once
    assert sent_at[90] - sent_at[0] < 1.0
    # then the pace is the refill rate, measured over the last 300 sends
    steady = 300 / (sent_at[-1] - sent_at[-301])
    assert steady == pytest.approx(50.0, rel=0.05)
    # and the bucket was (almost) never hit empty
    assert bucket.rejected <= 3


async def test_hourly_budget_is_spent_then_waits_for_the_window() -> None:
    time = FakeTime()
    pacer = make_pacer(time)
    started = window_start = time.monotonic()
    remaining = 60
    rejected = 0
    sends = 0
    while sends < 80:
        await pacer.acquire()
        sends += 1
        if time.monotonic() - window_start >= 3600:
            window_start, remaining = time.monotonic(), 60
        if remaining == 0:
            rejected += 1
            pacer.throttled_for(window_start + 3600 - time.monotonic())
            continue
        remaining -= 1
        pacer.completed(remaining)
    # 60 in the first window, the rest only after it reset
    assert time.monotonic() - started >= 3600
    assert rejected <= 8


async def test_a_budget_never_seen_above_the_reserve_is_still_spent() -> None:
    # a batch that starts while another client keeps the subscription's bucket nearly empty
    # never sees a header above 3, yet tokens refill: waiting for a reserve the bucket is never
    # seen to hold would wait for ever
    time = FakeTime()
    pacer = make_pacer(time)
    bucket = Bucket(time, burst=3, refill=2.0)

    async def send(times: int) -> None:
        for _ in range(times):
            await pacer.acquire()
            time.advance(0.05)
            bucket.answer(pacer)

    # a bound on a hang (the fake clock's sleeps yield to the loop), not a wait for anything
    await asyncio.wait_for(send(40), timeout=10)
    # a full bucket hides its refill (what we take comes straight back), so the pace is the
    # prober's, not the refill rate; but no wait is longer than the longest probe interval, and
    # the sends do not bounce off 429s
    assert max(time.slept) <= 30.0
    assert bucket.rejected <= 2


async def test_a_burst_spent_before_the_rate_is_known_costs_no_long_wait() -> None:
    # A fast client spends a burst of 20 in half a second of answers; the refill rate needs a
    # second of them. Answers at the reserve meanwhile do not mean that nothing refills: they
    # must not stretch the probe interval (it used to double with each, a wait of 1 s or more
    # while 20 tokens a second came back).
    time = FakeTime()
    pacer = make_pacer(time)
    bucket = Bucket(time, burst=20, refill=20.0)

    async def send(times: int) -> None:
        for _ in range(times):
            await pacer.acquire()
            time.advance(0.02)
            bucket.answer(pacer)

    await asyncio.wait_for(send(80), timeout=10)
    assert bucket.rejected == 0
    assert max(time.slept) <= 0.5


async def test_a_bucket_larger_than_any_header_seen_is_not_stormed_after_an_idle() -> None:
    # another client drains the bucket while the batch starts (no header above 2), then stops;
    # after a long idle the bucket is full (200), far above the largest budget seen: the capped
    # rule lets the first send go, its header shows the real budget, and no 429 follows
    time = FakeTime()
    pacer = make_pacer(time)
    bucket = Bucket(time, burst=200, refill=10.0)

    async def send(times: int, *, drained: bool) -> None:
        for _ in range(times):
            await pacer.acquire()
            time.advance(0.05)
            if drained:
                bucket.take()  # the other client's
                bucket.tokens = min(bucket.tokens, 3.0)
            bucket.answer(pacer)

    await asyncio.wait_for(send(60, drained=True), timeout=10)
    assert pacer._capacity <= 3
    rejected = bucket.rejected
    time.advance(600.0)  # the idle
    started = time.monotonic()
    await asyncio.wait_for(send(400, drained=False), timeout=10)
    assert bucket.rejected - rejected <= 1
    # the burst went at once, then the refill rate: 400 sends in about (400 - 200) / 10 s
    assert time.monotonic() - started < 40


async def _paced_batch(runs: int, *, tell_backlog: bool) -> tuple[float, int]:
    """One subscription's ``runs`` requests sent one after another; when they ended, and the
    429s the bucket gave."""
    time = FakeTime()
    pacer = make_pacer(time)
    bucket = Bucket(time, burst=50, refill=20.0)
    sent = 0
    if tell_backlog:
        pacer.expect(lambda: runs - sent - 1)
    for sent in range(runs):  # noqa: B007  # read by the backlog above
        await pacer.acquire()
        time.advance(0.02)
        bucket.answer(pacer)
    return time.monotonic(), bucket.rejected


async def test_the_last_requests_spend_the_reserve_and_end_sooner() -> None:
    kept, kept_429s = await asyncio.wait_for(_paced_batch(300, tell_backlog=False), timeout=10)
    spent, spent_429s = await asyncio.wait_for(_paced_batch(300, tell_backlog=True), timeout=10)
    assert kept_429s == spent_429s == 0
    # the reserve is 3 tokens (0.15 s at 20/s); sent one after another, 20 ms each, the last
    # ones save less than that
    assert spent <= kept - 0.04


async def test_the_last_requests_go_at_once_on_the_tokens_the_header_counted() -> None:
    time = FakeTime()
    pacer = make_pacer(time)
    pacer.expect(lambda: 0)
    pacer.completed(3)
    await asyncio.wait_for(asyncio.gather(*(pacer.acquire() for _ in range(3))), timeout=10)
    assert time.slept == []


@pytest.mark.parametrize("backlog", [None, 3])
async def test_the_reserve_is_kept_while_more_requests_will_follow(backlog: int | None) -> None:
    time = FakeTime()
    pacer = make_pacer(time)
    if backlog is not None:
        pacer.expect(lambda: backlog)
    pacer.completed(3)
    await asyncio.wait_for(pacer.acquire(), timeout=10)
    assert time.slept != []


def test_refill_only_extrapolated_is_not_spent_by_the_last_requests() -> None:
    time = FakeTime()
    pacer = make_pacer(time)
    pacer.expect(lambda: 1)
    for _ in range(40):  # a known refill of 20/s
        time.advance(0.05)
        pacer.completed(0)
    assert pacer._rates.rate()
    # the rate says a token has refilled by now; the header said none: wait for the reserve
    time.advance(0.06)
    wait = pacer.delay(time.monotonic())
    assert wait is not None
    assert wait > 0


async def test_the_last_requests_spend_what_the_header_counted_even_if_not_all_fit() -> None:
    # Two requests in flight at a time, as a batch with spare concurrency sends them: the
    # header counted 3 tokens, one of them is claimed by a request still in flight, three
    # requests are left. Two of them fit in what the header counted: they go now, not a round
    # trip later (the last fits after the next answer)
    time = FakeTime()
    pacer = make_pacer(time)
    left = 3
    pacer.expect(lambda: left - 1)
    pacer.completed(5)
    for _ in range(2):
        await asyncio.wait_for(pacer.acquire(), timeout=10)
    pacer.completed(3)
    now = time.monotonic()
    sent = []
    for _ in range(2):
        await asyncio.wait_for(pacer.acquire(), timeout=10)
        left -= 1
        sent.append(time.monotonic())
    assert sent == [now, now]
    assert time.slept == []
    last = asyncio.ensure_future(pacer.acquire())
    await asyncio.sleep(0)
    assert not last.done()  # every counted token is claimed: it waits for an answer
    pacer.completed(3)  # one answered; the header counts a token nobody has claimed
    await asyncio.wait_for(last, timeout=10)
    assert time.slept == []
