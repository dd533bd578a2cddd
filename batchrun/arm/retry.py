"""The retry policy: one tenacity object that says what is retried, how often, and how long to wait.

- **What**: an :class:`~batchrun.errors.ApiError` (or ``TransportError``) whose ``transient`` is
  true — 408/429/5xx answers and lost connections. Everything else, including ``AuthError``, is
  raised at once.
- **How often**: until ``max_attempts`` attempts or ``max_seconds`` since the first one.
- **How long**: the server's ``Retry-After`` / ``x-ms-retry-after-ms`` when it gave one,
  otherwise exponential backoff with full jitter; never past what ``max_seconds`` leaves. A
  ``Retry-After`` longer than what is left (``999999``, an HTTP-date in 2099) stops at once:
  waiting out a budget that cannot cover it would only park the run, so it fails with the
  server's answer.
- The last error is re-raised as itself (``reraise=True``), never wrapped in ``RetryError``.

The caller drives the attempts, so each one can look at what the previous one left behind::

    last: ApiError | None = None
    async for attempt in retrying(settings, before_sleep=on_retry):
        with attempt:
            if last is not None and last.sent:
                ...  # the lost createRun may have created the run: reconcile before re-posting
            try:
                return await client.create_run(spec, client_request_id=request_id)
            except ApiError as exc:
                last = exc
                raise

``before_sleep(retry_state)`` runs after a failed attempt that will be retried, before the wait:
the place to log and count the retry. ``retry_state.outcome.exception()`` is the error,
``retry_state.upcoming_sleep`` the wait, ``retry_state.attempt_number`` the attempt that failed.
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, cast

import tenacity
from tenacity import RetryCallState
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from batchrun.errors import ApiError

if TYPE_CHECKING:
    import random
    from collections.abc import Awaitable, Callable

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """How often, and for how long, one request is retried (``--max-attempts``,
    ``--max-retry-time``)."""

    max_attempts: int = 8
    """Attempts in all, the first one included (default 8): the default backoff's seven waits
    add up to about a minute at most (half that on average), enough to ride out a brief outage
    before a run is failed."""
    max_seconds: float = 600.0
    """Seconds from the first attempt after which no new attempt starts (default 600); also the
    cap on every wait: a ``Retry-After`` asking for more than is left fails the run at once, so
    one answer asking for a day cannot park a run."""
    backoff_initial_s: float = 0.5
    """Seconds, the scale of the first backoff wait when the server gave no ``Retry-After``
    (default 0.5); each later wait may double it, with full jitter so retries do not march in
    step."""
    backoff_max_s: float = 30.0
    """Seconds, the longest backoff wait (default 30): later retries stay spread out without
    leaving a run idle for minutes."""


def is_transient(exc: BaseException) -> bool:
    """Whether retrying may help: only ApiErrors that say so."""
    return isinstance(exc, ApiError) and exc.transient


class _JitteredBackoff(tenacity.wait_random_exponential):
    """``wait_random_exponential`` drawing from an injected ``random.Random``."""

    def __init__(self, *, initial_s: float, max_s: float, rng: random.Random) -> None:
        super().__init__(multiplier=initial_s, max=max_s)
        self._rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        high = tenacity.wait_exponential.__call__(self, retry_state)
        return self._rng.uniform(self.min, high)


def _failure(retry_state: RetryCallState) -> BaseException | None:
    outcome = retry_state.outcome
    return outcome.exception() if outcome is not None and outcome.failed else None


def _seconds_left(retry_state: RetryCallState, budget_s: float) -> float:
    return max(0.0, budget_s - (retry_state.seconds_since_start or 0.0))


class wait_retry_after(wait_base):  # lower case, like the tenacity waits it composes with
    """The server's Retry-After when the failed attempt carried one, else ``backoff``; never
    longer than what is left of ``cap_s`` since the first attempt."""

    def __init__(self, backoff: wait_base, *, cap_s: float) -> None:
        self.backoff = backoff
        self.cap_s = cap_s

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = _failure(retry_state)
        if isinstance(exc, ApiError) and exc.retry_after is not None:
            wait = max(exc.retry_after, 0.0)
        else:
            wait = self.backoff(retry_state)
        return min(wait, _seconds_left(retry_state, self.cap_s))


class stop_when_told_to_wait_too_long(stop_base):  # lower case, like tenacity's stops
    """Stop when the server's Retry-After asks for more than is left of ``budget_s``."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = _failure(retry_state)
        if not isinstance(exc, ApiError) or exc.retry_after is None:
            return False
        return exc.retry_after > _seconds_left(retry_state, self.budget_s)


class _AsyncRetrying(tenacity.AsyncRetrying):
    """tenacity's controller, without the reference cycle between it and its call state.

    ``RetryCallState.retry_object`` points back at the controller, which holds the state: every
    run's controller, its stops and waits and its attempt's ``Future`` (with a
    ``threading.Condition``) then stay alive until a full collection finds the cycle, ~2,400 of
    them at once in a 10,000-run batch (benchmarks/README.md). tenacity uses the back reference
    only in the state's ``repr``, so a weak one frees each controller as soon as its run is done.
    """

    def __aiter__(self) -> _AsyncRetrying:
        super().__aiter__()
        state = self._retry_state
        state.retry_object = cast("tenacity.BaseRetrying", weakref.proxy(self))
        return self

    def after_first(self, failure: BaseException, *, started: float) -> RetryCallState:
        """The state as if the iteration had begun at ``started`` and its first attempt had
        failed with ``failure``: the next ``__anext__`` judges it."""
        self.__aiter__()
        state = self._retry_state
        state.start_time = started
        state.set_exception((type(failure), failure, failure.__traceback__))
        return state


@functools.lru_cache(maxsize=16)
def _rules(settings: RetrySettings) -> tuple[stop_base, tenacity.retry_base, wait_base]:
    # stateless, so shared by every operation with the same settings (the scheduler makes one
    # controller per run, usually with the same settings)
    backoff = tenacity.wait_random_exponential(
        multiplier=settings.backoff_initial_s, max=settings.backoff_max_s
    )
    return _stop(settings), tenacity.retry_if_exception(is_transient), _wait(settings, backoff)


def _stop(settings: RetrySettings) -> stop_base:
    return (
        tenacity.stop_after_attempt(settings.max_attempts)
        | tenacity.stop_after_delay(settings.max_seconds)
        | stop_when_told_to_wait_too_long(settings.max_seconds)
    )


def _wait(settings: RetrySettings, backoff: wait_base) -> wait_base:
    return wait_retry_after(backoff, cap_s=settings.max_seconds)


def retrying(
    settings: RetrySettings,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    before_sleep: Callable[[RetryCallState], Awaitable[None] | None] | None = None,
    rng: random.Random | None = None,
) -> tenacity.AsyncRetrying:
    """A fresh retry controller for one operation (tenacity keeps per-operation state in it)."""
    if rng is None:
        stop, retry, wait = _rules(settings)
    else:
        backoff = _JitteredBackoff(
            initial_s=settings.backoff_initial_s, max_s=settings.backoff_max_s, rng=rng
        )
        stop, retry, wait = (
            _stop(settings),
            tenacity.retry_if_exception(is_transient),
            _wait(settings, backoff),
        )
    return _AsyncRetrying(
        stop=stop,
        retry=retry,
        wait=wait,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


async def attempt_until_done(
    settings: RetrySettings,
    attempt: Callable[[], Awaitable[_T]],
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    before_sleep: Callable[[RetryCallState], Awaitable[None] | None] | None = None,
) -> _T:
    """``attempt()`` until it returns or the policy gives up, exactly as::

        async for a in retrying(settings, sleep=sleep, before_sleep=before_sleep):
            with a:
                return await attempt()

    but the controller is built only once the first attempt has failed with an error worth
    retrying: most runs take one attempt, and tenacity's per-iteration machinery was ~0.04 ms
    of CPU a run (a tenth of a run's own CPU in a large batch).
    """
    started = time.monotonic()
    try:
        return await attempt()
    except BaseException as exc:
        # the only retry rule is is_transient (reraise=True): anything else is raised as itself
        if not is_transient(exc):
            raise
        failure = exc
    policy = retrying(settings, sleep=sleep, before_sleep=before_sleep)
    assert isinstance(policy, _AsyncRetrying)
    policy.after_first(failure, started=started)
    del failure  # the state holds it; a local would keep its traceback alive past the wait
    while True:
        # StopAsyncIteration never comes: with reraise=True the policy returns or raises
        manager = await policy.__anext__()
        with manager:
            return await attempt()
