from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from batchrun.run.slots import FairSlots
from tests.helpers.scheduling import peak_inside

if TYPE_CHECKING:
    from collections.abc import Callable


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


async def turns_until(done: Callable[[], bool], *, turns: int = 20) -> bool:
    """Let the loop run up to ``turns`` times, until ``done()``: a bounded wait, no clock."""
    for _ in range(turns):
        if done():
            return True
        await asyncio.sleep(0)
    return done()


async def test_a_waiter_cancelled_while_queued_gives_up_its_place() -> None:
    slots = FairSlots(1)
    served: list[str] = []

    async def use(key: str) -> None:
        async with slots.hold(key):
            served.append(key)

    held = slots.hold("a")
    await held.__aenter__()
    doomed = asyncio.ensure_future(use("b"))
    after = asyncio.ensure_future(use("c"))
    await turns_until(lambda: False, turns=3)  # both queue behind "a"
    doomed.cancel()
    await held.__aexit__(None, None, None)
    assert await turns_until(after.done)
    assert doomed.cancelled()
    assert served == ["c"]
    async with slots.hold("d"):
        served.append("d")
    assert served == ["c", "d"]
    # the cancelled waiter made up no slot on its way out: the limit is still one
    assert await peak_inside(slots.hold, ["x", "y", "z"]) == 1


async def test_a_waiter_cancelled_just_after_being_handed_a_slot_passes_it_on() -> None:
    slots = FairSlots(1)
    served: list[str] = []

    async def use(key: str) -> None:
        async with slots.hold(key):
            served.append(key)

    held = slots.hold("a")
    await held.__aenter__()
    handed = asyncio.ensure_future(use("b"))
    after = asyncio.ensure_future(use("c"))
    await turns_until(lambda: False, turns=3)  # both queue behind "a"
    # in one turn of the loop: the slot goes to "b", and "b" is cancelled before it wakes
    await held.__aexit__(None, None, None)
    handed.cancel()
    assert await turns_until(after.done), "the slot handed to the cancelled waiter was lost"
    assert handed.cancelled()
    assert served == ["c"]
    # and no slot was made up either: the limit is still one
    assert await peak_inside(slots.hold, ["x", "y", "z"]) == 1


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        FairSlots(0)
