import asyncio
import gc
import random
import weakref
from types import SimpleNamespace

import pytest
import tenacity
from tenacity import RetryCallState

from batchrun.arm.answers import api_error
from batchrun.arm.retry import RetrySettings, is_transient, retrying
from batchrun.errors import ApiError, AuthError, TransportError
from tests.helpers.clock import FakeTime


def transient(retry_after: float | None = None) -> ApiError:
    return ApiError(
        status=503,
        code="ServiceUnavailable",
        message="busy",
        transient=True,
        retry_after=retry_after,
    )


def permanent() -> ApiError:
    return ApiError(status=400, code="BadRequest", message="no", transient=False)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


async def attempt_until_done(
    policy: tenacity.AsyncRetrying, failures: list[BaseException], result: str = "ok"
) -> tuple[str, int]:
    """Run ``policy`` over an operation that raises ``failures`` in turn, then returns."""
    attempts = 0
    async for attempt in policy:
        with attempt:
            attempts += 1
            if failures:
                raise failures.pop(0)
            return result, attempts
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (transient(), True),
        (permanent(), False),
        (TransportError(status=None, code="Timeout", message="slow", transient=True), True),
        (
            TransportError(status=None, code="TlsCertificateError", message="x", transient=False),
            False,
        ),
        (AuthError("no token"), False),
        (ValueError("bug"), False),
    ],
)
def test_is_transient(exc: BaseException, expected: bool) -> None:
    assert is_transient(exc) is expected


async def test_transient_errors_are_retried_until_success(fake_time: FakeTime) -> None:
    policy = retrying(RetrySettings(), sleep=fake_time.sleep)
    assert await attempt_until_done(policy, [transient(), transient()]) == ("ok", 3)
    assert len(fake_time.slept) == 2


async def test_transient_errors_are_retried_up_to_max_attempts_then_reraised(
    fake_time: FakeTime,
) -> None:
    errors: list[BaseException] = [transient() for _ in range(10)]
    last = errors[3]
    policy = retrying(RetrySettings(max_attempts=4), sleep=fake_time.sleep)
    with pytest.raises(ApiError) as caught:
        await attempt_until_done(policy, errors)
    assert caught.value is last
    assert len(fake_time.slept) == 3


@pytest.mark.parametrize("error", [permanent(), AuthError("no token"), KeyError("bug")])
async def test_permanent_errors_stop_at_once(fake_time: FakeTime, error: BaseException) -> None:
    policy = retrying(RetrySettings(), sleep=fake_time.sleep)
    with pytest.raises(type(error)) as caught:
        await attempt_until_done(policy, [error])
    assert caught.value is error
    assert fake_time.slept == []


@pytest.mark.parametrize(
    ("retry_after", "max_seconds", "expected_wait"),
    [
        (7.0, 600.0, 7.0),
        (0.0, 600.0, 0.0),
        (45.0, 600.0, 45.0),  # beyond backoff_max_s: honoured in full
        (590.0, 600.0, 590.0),  # within what is left: honoured in full
    ],
)
async def test_retry_after_is_the_wait(
    fake_time: FakeTime, retry_after: float, max_seconds: float, expected_wait: float
) -> None:
    policy = retrying(RetrySettings(max_seconds=max_seconds), sleep=fake_time.sleep)
    await attempt_until_done(policy, [transient(retry_after=retry_after)])
    assert fake_time.slept == [expected_wait]


@pytest.mark.parametrize("seed", range(5))
async def test_backoff_is_full_jitter_within_an_exponential_bound(
    fake_time: FakeTime, seed: int
) -> None:
    settings = RetrySettings(max_attempts=10, backoff_initial_s=0.5, backoff_max_s=4.0)
    policy = retrying(settings, sleep=fake_time.sleep, rng=random.Random(seed))
    await attempt_until_done(policy, [transient() for _ in range(9)])
    bounds = [min(4.0, 0.5 * 2**n) for n in range(9)]
    assert len(fake_time.slept) == 9
    assert all(0 <= wait <= bound for wait, bound in zip(fake_time.slept, bounds, strict=True))
    assert len(set(fake_time.slept)) > 1  # jittered, not fixed


async def test_injected_rng_makes_backoff_reproducible() -> None:
    async def waits(seed: int) -> list[float]:
        fake = FakeTime()
        policy = retrying(RetrySettings(), sleep=fake.sleep, rng=random.Random(seed))
        await attempt_until_done(policy, [transient() for _ in range(5)])
        return fake.slept

    # the waits come from the injected generator: the same seed, the same waits; another seed,
    # other waits (were it ignored, or the waits fixed, one of the two would fail)
    assert await waits(42) == await waits(42)
    assert await waits(42) != await waits(43)


async def test_backoff_without_an_injected_rng_is_bounded_too(fake_time: FakeTime) -> None:
    settings = RetrySettings(backoff_initial_s=0.5, backoff_max_s=1.0)
    policy = retrying(settings, sleep=fake_time.sleep)
    await attempt_until_done(policy, [transient() for _ in range(6)])
    assert all(0 <= wait <= 1.0 for wait in fake_time.slept)


async def test_max_seconds_zero_allows_a_single_attempt(fake_time: FakeTime) -> None:
    policy = retrying(RetrySettings(max_attempts=8, max_seconds=0.0), sleep=fake_time.sleep)
    with pytest.raises(ApiError):
        await attempt_until_done(policy, [transient()])
    assert fake_time.slept == []


async def test_retrying_stops_after_max_seconds(
    fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tenacity measures elapsed time with time.monotonic(); let it read the fake clock.
    assert hasattr(tenacity, "time")
    monkeypatch.setattr(tenacity, "time", SimpleNamespace(monotonic=fake_time.monotonic))
    policy = retrying(RetrySettings(max_attempts=100, max_seconds=10.0), sleep=fake_time.sleep)
    errors: list[BaseException] = [transient(retry_after=4.0) for _ in range(100)]
    with pytest.raises(ApiError):
        await attempt_until_done(policy, errors)
    # attempts at t=0, 4 and 8; after the one at 8 s only 2 s are left, less than Retry-After
    assert fake_time.slept == [4.0, 4.0]
    assert len(errors) == 97


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "999999"},
        {"Retry-After": "Thu, 01 Jan 2099 00:00:00 GMT"},
        {"x-ms-retry-after-ms": "999999000"},
    ],
)
async def test_a_retry_after_beyond_the_budget_fails_at_once_with_the_answer(
    fake_time: FakeTime, headers: dict[str, str]
) -> None:
    throttled = api_error(429, None, headers, '{"error": {"code": "TooManyRequests"}}')
    assert throttled.retry_after is not None and throttled.retry_after > 600
    policy = retrying(RetrySettings(max_seconds=600.0), sleep=fake_time.sleep)
    with pytest.raises(ApiError) as caught:
        await attempt_until_done(policy, [throttled])
    assert caught.value is throttled
    assert fake_time.slept == []


async def test_a_wait_is_capped_at_what_the_budget_leaves(
    fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tenacity, "time", SimpleNamespace(monotonic=fake_time.monotonic))
    policy = retrying(
        RetrySettings(max_attempts=10, max_seconds=10.0, backoff_initial_s=8.0, backoff_max_s=8.0),
        sleep=fake_time.sleep,
        rng=random.Random(0),
    )
    errors: list[BaseException] = [transient() for _ in range(10)]
    with pytest.raises(ApiError):
        await attempt_until_done(policy, errors)
    # the second backoff drew more than the 3.2 s left: it waits what is left, then stops
    assert sum(fake_time.slept) == pytest.approx(10.0)


@pytest.mark.parametrize("hook_is_async", [True, False])
async def test_before_sleep_sees_the_error_wait_and_attempt(
    fake_time: FakeTime, hook_is_async: bool
) -> None:
    seen: list[tuple[int, BaseException | None, float]] = []

    def record(state: RetryCallState) -> None:
        assert state.outcome is not None
        seen.append((state.attempt_number, state.outcome.exception(), state.upcoming_sleep))

    async def record_async(state: RetryCallState) -> None:
        record(state)

    first, second = transient(retry_after=1.0), transient(retry_after=2.0)
    policy = retrying(
        RetrySettings(),
        sleep=fake_time.sleep,
        before_sleep=record_async if hook_is_async else record,
    )
    await attempt_until_done(policy, [first, second])
    assert seen == [(1, first, 1.0), (2, second, 2.0)]


async def test_operations_retried_at_once_each_get_their_own_attempts(
    fake_time: FakeTime,
) -> None:
    # tenacity keeps an operation's attempt count in the controller: one shared by two
    # operations in flight together would stop one of them early
    settings = RetrySettings(max_attempts=3)
    outcomes = await asyncio.gather(
        *(
            attempt_until_done(retrying(settings, sleep=fake_time.sleep), [transient()] * 2)
            for _ in range(2)
        )
    )
    assert outcomes == [("ok", 3), ("ok", 3)]
    assert len(fake_time.slept) == 4


async def test_a_controller_is_freed_when_its_operation_ends_without_the_cycle_collector(
    fake_time: FakeTime,
) -> None:
    # a batch makes one controller per run: left in a reference cycle, each would wait (with
    # its attempt's Future and lock) for a full collection, ~12 MB at 10,000 runs
    policy = retrying(RetrySettings(), sleep=fake_time.sleep)
    alive = weakref.ref(policy)
    collecting = gc.isenabled()
    gc.disable()
    try:
        assert await attempt_until_done(policy, []) == ("ok", 1)
        del policy
        assert alive() is None
    finally:
        if collecting:
            gc.enable()


async def test_a_call_state_still_names_its_controller(fake_time: FakeTime) -> None:
    policy = retrying(RetrySettings(), sleep=fake_time.sleep)
    async for attempt in policy:
        with attempt:
            # tenacity's only use of the back reference (a weak one now): naming the operation
            assert attempt.retry_state.get_fn_name() == str(policy)
