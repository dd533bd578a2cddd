from __future__ import annotations

import asyncio

import pytest

from batchrun.run.slots import FairSlots
from tests.helpers.scheduling import peak_inside


async def test_freed_slots_go_round_robin_between_keys() -> None:
    slots = FairSlots(1)
    served: list[str] = []
    gate = asyncio.Event()

    async def use(key: str) -> None:
        async with slots.hold(key):
            served.append(key)
            await gate.wait()

    holder = asyncio.ensure_future(use("first"))
    await asyncio.sleep(0)
    waiters = [asyncio.ensure_future(use("a")) for _ in range(4)]
    waiters.append(asyncio.ensure_future(use("b")))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(holder, *waiters)
    # b arrived after four a's but is served second, not fifth
    assert served == ["first", "a", "b", "a", "a", "a"]


async def test_never_more_holders_than_the_limit() -> None:
    assert await peak_inside(FairSlots(3).hold, (f"k{n % 4}" for n in range(40))) == 3


async def test_a_cancelled_waiter_does_not_lose_a_slot() -> None:
    slots = FairSlots(1)
    gate = asyncio.Event()

    async def hold_until_gate() -> None:
        async with slots.hold("a"):
            await gate.wait()

    holder = asyncio.ensure_future(hold_until_gate())
    await asyncio.sleep(0)
    doomed = asyncio.ensure_future(slots.hold("b").__aenter__())
    await asyncio.sleep(0)
    doomed.cancel()
    gate.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await doomed
    async with slots.hold("c"):
        pass


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        FairSlots(0)
