"""The pacer's arithmetic, exactly: the least-squares refill rate and its window, the token
estimate, the wait below the reserve, the probe's back-off and the accounting of requests in
flight. test_pacing.py shows the behaviour over hundreds of sends; these pin each step of the
algorithm in the module docstring (written from the survivors of mutation testing,
tests/MUTATION.md)."""

from __future__ import annotations

import pytest

from batchrun.arm.pacing import RateEstimator, SubscriptionPacer
from tests.helpers.clock import FakeTime

# --- the refill rate -----------------------------------------------------------------------


def fitted(points: list[tuple[float, int]]) -> float | None:
    rates = RateEstimator()
    for now, remaining in points:
        rates.observe(now, remaining, consumed=False)
    return rates.rate()


@pytest.mark.parametrize(
    ("points", "rate"),
    [
        # a straight line: its slope, whatever the clock's origin
        ([(100.0 + t, 50 + 10 * t) for t in range(8)], 10.0),
        ([(0.0, 7), (2.0, 8)], 0.5),  # two points are enough
        ([(100.0, 7), (101.0, 9)], 2.0),  # a span of exactly the minimum second
        # times -0.7, +0.2, +0.5 from their mean, values -1, 0, +1: slope 1.2 / 0.78
        ([(100.0, 7), (100.9, 8), (101.2, 9)], pytest.approx(1.2 / 0.78)),
        ([(100.0, 9), (102.0, 1)], 0.0),  # a budget that only shrinks refills at 0, not less
        # a point exactly the window (8 s) older than the newest still counts
        ([(100.0, 0), (104.0, 20), (108.0, 24)], 3.0),
    ],
)
def test_the_rate_is_the_least_squares_slope_of_the_window(
    points: list[tuple[float, int]], rate: float
) -> None:
    assert fitted(points) == rate


@pytest.mark.parametrize(
    "points",
    [
        [],
        [(100.0, 5)],
        [(100.0, 5), (100.5, 9)],  # less than a second: the whole numbers are noise
    ],
)
def test_too_little_to_say_is_no_rate(points: list[tuple[float, int]]) -> None:
    assert fitted(points) is None


def test_points_older_than_the_window_are_forgotten() -> None:
    # 10/s for a while, then nothing refills: after 8 s only the flat part is left
    old = [(100.0 + t, 10 * t) for t in range(5)]
    flat = [(112.0 + t, 40) for t in range(5)]
    assert fitted(old + flat) == 0.0


def test_the_rate_is_fitted_again_every_sixteen_answers() -> None:
    rates = RateEstimator()
    for t in range(4):
        rates.observe(float(t), 10 * t, consumed=False)
    assert rates.rate() == 10.0
    for t in range(4, 19):  # fifteen answers on a flat line: not fitted yet
        rates.observe(float(t), 30, consumed=False)
        assert rates.rate() == 10.0, t
    rates.observe(19.0, 30, consumed=False)  # the sixteenth
    assert rates.rate() == pytest.approx(0.0, abs=0.01)


# --- the token estimate and the wait --------------------------------------------------------


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def pacer(time: FakeTime) -> SubscriptionPacer:
    return SubscriptionPacer(clock=time.monotonic, sleep=time.sleep)


def test_without_a_rate_the_estimate_is_the_last_header(
    time: FakeTime, pacer: SubscriptionPacer
) -> None:
    pacer.completed(100)
    pacer.completed(10)  # the same instant: no rate to be had
    time.advance(5.0)
    assert pacer.available(time.monotonic()) == 10.0


def test_the_estimate_refills_at_the_rate_up_to_the_largest_header_seen(
    time: FakeTime, pacer: SubscriptionPacer
) -> None:
    pacer.completed(10)  # consumed 1: 11 at t=0
    time.advance(1.0)
    pacer.completed(10)  # consumed 2: 12 at t=1, so 1 token a second
    time.advance(2.0)
    assert pacer.available(time.monotonic()) == 10.0  # 12 would be more than ever seen
    pacer.completed(4)
    time.advance(2.0)
    # the rate is still the first fit's, 1/s (it is fitted again every sixteen answers)
    assert pacer.available(time.monotonic()) == 6.0


async def test_requests_in_flight_are_taken_off_the_estimate(
    time: FakeTime, pacer: SubscriptionPacer
) -> None:
    pacer.completed(50)
    await pacer.acquire()
    await pacer.acquire()
    assert pacer.available(time.monotonic()) == 48.0
    pacer.abandoned()  # no answer: it may or may not have spent a token
    assert pacer.available(time.monotonic()) == 49.0
    pacer.abandoned()
    pacer.abandoned()  # one more than was sent: never below zero in flight
    assert pacer.available(time.monotonic()) == 50.0


@pytest.mark.parametrize(("remaining", "goes_now"), [(4, True), (5, True), (3, False), (2, False)])
def test_it_sends_at_once_while_more_than_the_reserve_is_left(
    pacer: SubscriptionPacer, time: FakeTime, remaining: int, goes_now: bool
) -> None:
    pacer.completed(remaining)
    assert (pacer.delay(time.monotonic()) == 0.0) is goes_now


def test_below_the_reserve_it_waits_for_one_token_at_the_refill_rate(
    time: FakeTime, pacer: SubscriptionPacer
) -> None:
    pacer.completed(0)  # (0, 1)
    time.advance(1.0)
    pacer.completed(3)  # (1, 5): 4 tokens a second; 3 left, the reserve is 3
    assert pacer.delay(time.monotonic()) == 0.25  # one token: a quarter of a second


def test_an_empty_budget_that_does_not_refill_is_probed_ever_more_slowly(
    time: FakeTime, pacer: SubscriptionPacer
) -> None:
    for remaining in (7, 6, 5, 4):  # one token fewer an answer, over more than a second
        pacer.completed(remaining)
        time.advance(0.4)
    waits = []
    for remaining in (3, 2, 1, 0):
        pacer.completed(remaining)
        waits.append(pacer.delay(time.monotonic()))
    assert waits == [1.0, 2.0, 4.0, 8.0]
    pacer.completed(4)  # tokens again: the next probe goes after the shortest interval
    pacer.completed(0)
    assert pacer.delay(time.monotonic()) == 1.0


def test_a_budget_at_the_reserve_before_any_rate_is_known_is_probed_at_the_shortest_interval(
    time: FakeTime, pacer: SubscriptionPacer
) -> None:
    # no second of answers yet: nothing says that the budget does not refill
    waits = []
    for remaining in (3, 2, 1, 0):
        pacer.completed(remaining)
        waits.append(pacer.delay(time.monotonic()))
    assert waits == [0.5, 0.5, 0.5, 0.5]


async def test_a_429_empties_the_estimate_and_frees_its_slot(
    time: FakeTime, pacer: SubscriptionPacer
) -> None:
    pacer.completed(50)
    await pacer.acquire()
    await pacer.acquire()
    pacer.throttled_for(5.0)
    assert pacer.delay(time.monotonic()) == 5.0
    # nothing left, and the other request still out
    assert pacer.available(time.monotonic()) == -1.0


def _at_twenty_a_second(time: FakeTime, pacer: SubscriptionPacer) -> None:
    for _ in range(30):  # the header holds while one answer every 0.05 s spends a token
        pacer.completed(10)
        time.advance(0.05)
    # the rate is fitted when first asked for (and again every 16 answers): ask now, so the
    # answers below are not part of the fit
    pacer.available(time.monotonic())


def test_a_header_is_dated_by_when_its_request_left(
    time: FakeTime, pacer: SubscriptionPacer
) -> None:
    # ARM counts the bucket as it admits the request: dated by the answer, the header would
    # be a round trip of refill short
    _at_twenty_a_second(time, pacer)
    left = pacer.now()
    time.advance(0.05)
    pacer.completed(3, sent_at=left)
    assert pacer.available(time.monotonic()) == pytest.approx(4.0)
    time.advance(0.05)
    pacer.completed(3)  # no date given: the answer's
    assert pacer.available(time.monotonic()) == pytest.approx(3.0)


def test_a_header_older_than_the_one_kept_does_not_replace_it(
    time: FakeTime, pacer: SubscriptionPacer
) -> None:
    # the earlier request answers later: its header cannot count the later one, already answered
    _at_twenty_a_second(time, pacer)
    earlier = pacer.now()
    time.advance(0.01)
    later = pacer.now()
    time.advance(0.04)
    pacer.completed(5, sent_at=later)
    pacer.completed(9, sent_at=earlier)
    assert pacer.available(time.monotonic()) == pytest.approx(5.0 + 20 * 0.04)
