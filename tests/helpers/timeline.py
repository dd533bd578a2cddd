"""Fake time for many tasks that sleep at once: each wakes at its own deadline, in order.

:class:`~tests.helpers.clock.FakeTime` moves the clock by every sleep it is asked for, which is
right for one sleeper and wrong for fifty sleeping side by side. Here a sleep only registers its
deadline; :meth:`Timeline.run` lets every task run until all of them wait, then moves the clock to
the earliest deadline and wakes that sleeper. Nothing really sleeps, and the order of events does
not depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable

T = TypeVar("T")

# passes of the event loop that let every ready task run before time moves on: far more than
# the longest chain of futures any test here resolves in one instant
_SETTLE_PASSES = 200


class Timeline:
    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._order), waiter))
        await waiter

    async def run(self, main: Awaitable[T], *, max_wakes: int = 100_000) -> T:
        """``main`` to its end, moving time only when every task is waiting for it."""
        task = asyncio.ensure_future(main)
        for _ in range(max_wakes):
            await self.settle()
            if task.done():
                return task.result()
            if not self._sleepers:
                task.cancel()
                raise AssertionError("nothing sleeps, yet the code under test has not finished")
            wake, _, waiter = heapq.heappop(self._sleepers)
            self.now = max(self.now, wake)
            if not waiter.done():
                waiter.set_result(None)
        task.cancel()
        raise AssertionError(f"not finished after {max_wakes} wake-ups")

    @staticmethod
    async def settle() -> None:
        for _ in range(_SETTLE_PASSES):
            await asyncio.sleep(0)
