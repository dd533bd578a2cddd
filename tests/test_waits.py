"""``first_of``: whichever wait ends first; the others are ended before it returns."""

from __future__ import annotations

import asyncio
import gc

import pytest

from batchrun.waits import first_of


async def test_an_event_already_set_returns_and_the_other_wait_is_ended() -> None:
    done, never = asyncio.Event(), asyncio.Event()
    done.set()
    before = asyncio.all_tasks()
    await first_of(done.wait(), never.wait())
    assert asyncio.all_tasks() == before  # nothing left pending behind it


async def test_within_zero_returns_without_waiting_for_either() -> None:
    first, second = asyncio.Event(), asyncio.Event()
    before = asyncio.all_tasks()
    await asyncio.wait_for(first_of(first.wait(), second.wait(), within_s=0), timeout=5)
    assert asyncio.all_tasks() == before


async def test_an_outer_cancel_propagates_and_ends_both_waits() -> None:
    first, second = asyncio.Event(), asyncio.Event()
    before = asyncio.all_tasks()
    waiting = asyncio.ensure_future(first_of(first.wait(), second.wait()))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert asyncio.all_tasks() == before


async def test_a_wait_that_raises_is_not_taken_for_an_end() -> None:
    async def broken() -> None:
        raise RuntimeError("the clock broke")

    never = asyncio.Event()
    with pytest.raises(RuntimeError, match="the clock broke"):
        await asyncio.wait_for(first_of(never.wait(), broken()), timeout=5)


async def test_no_task_is_destroyed_pending_nor_an_exception_unretrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    for _ in range(50):
        first, second = asyncio.Event(), asyncio.Event()
        first.set()
        await first_of(first.wait(), second.wait(), within_s=0.0)
    gc.collect()
    assert "destroyed but it is pending" not in caplog.text
    assert "never retrieved" not in caplog.text
