"""Request slots shared by all subscriptions, handed out round-robin between them.

A plain semaphore serves waiters first come, first served: a manifest listed subscription by
subscription would then fill every slot with the first subscription's runs while the others'
budgets sit full and their refill goes to waste. Here each subscription queues on its own and a
freed slot goes to the next subscription in turn.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class FairSlots:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self._free = limit
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._turns: deque[str] = deque()

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        await self._acquire(key)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, key: str) -> None:
        if self._free and not self._turns:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting.get(key)
        if queue is None:
            queue = self._waiting[key] = deque()
            self._turns.append(key)
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # the slot was handed over just as we were cancelled: pass it on
                self._release()
            raise

    def _release(self) -> None:
        while self._turns:
            key = self._turns.popleft()
            queue = self._waiting[key]
            waiter = queue.popleft()
            if queue:
                self._turns.append(key)
            else:
                del self._waiting[key]
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
