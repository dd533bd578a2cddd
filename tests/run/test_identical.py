"""IdenticalRuns: entries that send the same createRun request go one after another."""

from __future__ import annotations

from batchrun.model import RunSpec
from batchrun.run.identical import IdenticalRuns
from tests.helpers.scheduling import peak_inside


def entry(entry_id: str, **parameters: object) -> RunSpec:
    return RunSpec(
        id=entry_id, subscription="s", resource_group="rg", factory="f", pipeline="P",
        parameters=dict(parameters),
    )  # fmt: skip


async def test_identical_requests_never_overlap() -> None:
    # the ids differ, the request is the same
    twins = [entry(f"e-{n}", day=1) for n in range(5)]
    assert await peak_inside(IdenticalRuns().one_at_a_time, twins) == 1


async def test_different_requests_go_at_once() -> None:
    others = [entry(f"e-{n}", day=n) for n in range(5)]
    assert await peak_inside(IdenticalRuns().one_at_a_time, others) == 5
