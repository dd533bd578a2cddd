"""IdenticalRuns: entries that send the same createRun request go one after another."""

from __future__ import annotations

import asyncio

from batchrun.model import RunSpec
from batchrun.run.identical import IdenticalRuns


def entry(entry_id: str, **parameters: object) -> RunSpec:
    return RunSpec(
        id=entry_id, subscription="s", resource_group="rg", factory="f", pipeline="P",
        parameters=dict(parameters),
    )  # fmt: skip


async def peak_overlap(specs: list[RunSpec]) -> int:
    identical = IdenticalRuns()
    inside = peak = 0

    async def go(spec: RunSpec) -> None:
        nonlocal inside, peak
        async with identical.one_at_a_time(spec):
            inside += 1
            peak = max(peak, inside)
            for _ in range(5):
                await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(go(spec) for spec in specs))
    return peak


async def test_identical_requests_never_overlap() -> None:
    # the ids differ, the request is the same
    assert await peak_overlap([entry(f"e-{n}", day=1) for n in range(5)]) == 1


async def test_different_requests_go_at_once() -> None:
    assert await peak_overlap([entry(f"e-{n}", day=n) for n in range(5)]) == 5
