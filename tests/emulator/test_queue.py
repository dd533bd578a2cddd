"""ADF's queue: a pipeline's concurrency bounds its InProgress runs; a full queue refuses."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.helpers.emulator_http import Adf, AdfFor, cloud_error, sales_eu

CONFIG = sales_eu("""
LoadOrders: {concurrency: 2}
BuildMarts: {}
""")
# no Queued phase of their own: every Queued run below is waiting for a slot
TIMING = {"run_queued_ms": 0, "run_duration_ms": 10_000, "cancel_ms": 1000}
THROTTLED = (
    "Pipeline execution throttled. If the concurrency value is set for a pipeline, "
    "a maximum of 3 runs will be queued for execution."
)


async def counts(adf: Adf) -> Counter[str]:
    return Counter(await adf.statuses())


async def test_at_most_concurrency_runs_are_in_progress_and_the_queue_drains(
    adf_for: AdfFor,
) -> None:
    adf, served = await adf_for(CONFIG, queue_cap=3, **TIMING)
    ids = [await adf.run_id() for _ in range(5)]
    assert await counts(adf) == {"InProgress": 2, "Queued": 3}
    status, body, headers = await adf.create()
    error = cloud_error((status, body), 400)
    assert (error["code"], error["message"]) == ("BadRequest", THROTTLED)
    assert "Retry-After" not in headers
    assert served.state.stats.runs_created == 5

    clock = served.manual_clock
    clock.advance(10)  # the first two end, the next two start
    assert await counts(adf) == {"Succeeded": 2, "InProgress": 2, "Queued": 1}
    assert [(await adf.get(i))["status"] for i in ids] == [
        "Succeeded",
        "Succeeded",
        "InProgress",
        "InProgress",
        "Queued",
    ]
    assert await adf.run_id()  # room again
    clock.advance(10)
    assert await counts(adf) == {"Succeeded": 4, "InProgress": 2}
    clock.advance(10)
    assert await counts(adf) == {"Succeeded": 6}


async def test_a_run_that_waited_starts_when_a_slot_frees(adf_for: AdfFor) -> None:
    adf, served = await adf_for(CONFIG, **TIMING)
    ids = [await adf.run_id() for _ in range(3)]
    served.manual_clock.advance(4)
    waited = await adf.get(ids[2])
    assert waited["status"] == "Queued"
    served.manual_clock.advance(6)
    started = await adf.get(ids[2])
    assert started["status"] == "InProgress"
    assert started["lastUpdated"] > waited["lastUpdated"]
    served.manual_clock.advance(10)
    ended = await adf.get(ids[2])
    assert ended["durationInMs"] == 20_000  # 10 s waiting for a slot + 10 s running


async def test_a_cancel_frees_a_slot_for_the_next_run(adf_for: AdfFor) -> None:
    adf, served = await adf_for(CONFIG, **TIMING)
    ids = [await adf.run_id() for _ in range(4)]
    status, _, _ = await adf.call("POST", f"/pipelineruns/{ids[0]}/cancel")
    assert status == 200
    # a cancelled Queued run leaves the queue at once
    assert (await adf.call("POST", f"/pipelineruns/{ids[3]}/cancel"))[0] == 200
    served.manual_clock.advance(1)  # the first cancel has landed: its slot is free
    assert [(await adf.get(i))["status"] for i in ids] == [
        "Cancelled",
        "InProgress",
        "InProgress",
        "Cancelled",
    ]


async def test_pipelines_without_concurrency_are_not_queued(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(CONFIG, queue_cap=0, **TIMING)
    for _ in range(5):
        await adf.run_id("BuildMarts")
    assert await adf.statuses("BuildMarts") == ["InProgress"] * 5


@pytest.mark.parametrize(
    ("settings", "status", "code", "retry_after"),
    [
        ({}, 400, "BadRequest", None),
        ({"queue_refusal_status": 429}, 429, "BadRequest", None),
        (
            {"queue_refusal_status": 429, "queue_refusal_retry_after_s": 30},
            429,
            "BadRequest",
            "30",
        ),
        ({"queue_refusal_code": "PipelineRunsThrottled"}, 400, "PipelineRunsThrottled", None),
    ],
)
async def test_the_refusal_answers_as_configured(
    adf_for: AdfFor, settings: dict[str, object], status: int, code: str, retry_after: str | None
) -> None:
    adf, _ = await adf_for(CONFIG, queue_cap=1, **TIMING, **settings)
    for _ in range(3):
        await adf.run_id()
    got, body, headers = await adf.create()
    error = cloud_error((got, body), status)
    assert error["code"] == code
    assert "a maximum of 1 runs will be queued" in error["message"]
    assert headers.get("Retry-After") == retry_after
