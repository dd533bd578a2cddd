"""queryActivityruns, per-pipeline run timing and failure rates, and recursive cancels, with time
moved by the ManualClock (no sleeping)."""

from __future__ import annotations

from typing import Any

import pytest

from batchrun.emulator.config import ConfigError
from tests.helpers.emulator_http import (
    WIDE,
    AdfFor,
    check,
    cloud_error,
    sales_eu,
    topology,
)

CONFIG = sales_eu("""
LoadOrders: {}
Flaky:
  failure_rate: 1.0
  queued_ms: 100
  duration_ms: 3000
Custom:
  failure_rate: 1.0
  duration_ms: 2000
  activities: [{name: GetRows, type: Lookup}, {name: CopyRows, type: Copy},
               {name: Notify, type: WebActivity}]
  failure: {activity: GetRows, code: "2100", failure_type: SystemError,
             message: "Timeout after 00:10:00 waiting for the lookup"}
Slow: {duration_ms: 60000}
""")


async def activities(adf: Any, run_id: str, body: dict[str, Any] | None = None) -> list[Any]:
    status, answer, _ = await adf.call(
        "POST", f"/pipelineruns/{run_id}/queryActivityruns", body=WIDE if body is None else body
    )
    assert status == 200, answer
    return list(check("ActivityRunsQueryResponse", answer)["value"])


async def test_a_failed_run_fails_in_its_last_activity_with_an_adf_error(adf_for: AdfFor) -> None:
    adf, served = await adf_for(CONFIG, run_queued_ms=1000, run_duration_ms=5000)
    run_id = await adf.run_id("Flaky")
    served.manual_clock.advance(0.05)
    assert await activities(adf, run_id) == []  # still Queued: nothing has started
    served.manual_clock.advance(1.0)
    running = await activities(adf, run_id)
    assert [(a["activityName"], a["status"]) for a in running] == [("LookupFlaky", "InProgress")]
    served.manual_clock.advance(3.0)
    rows = await activities(adf, run_id)
    assert [(a["activityType"], a["status"]) for a in rows] == [
        ("Lookup", "Succeeded"),
        ("Copy", "Failed"),
    ]
    error = rows[1]["error"]
    assert error["errorCode"] == "2200"
    assert error["failureType"] == "UserError"
    assert error["target"] == "CopyFlaky"
    assert "UserErrorSourceBlobNotExist" in error["message"]
    assert rows[0]["error"]["errorCode"] == ""
    run = await adf.get(run_id)
    assert run["status"] == "Failed"
    # the pipeline's own timing (100 ms queued, 3 s running), not the settings'
    assert run["durationInMs"] == 3100
    assert run["message"].startswith("Operation on target CopyFlaky failed: ErrorCode=")
    assert {a["pipelineRunId"] for a in rows} == {run_id}


async def test_a_configured_failure_stops_the_activities_after_it(adf_for: AdfFor) -> None:
    adf, served = await adf_for(CONFIG, run_queued_ms=0)
    run_id = await adf.run_id("Custom")
    served.manual_clock.advance(10)
    rows = await activities(adf, run_id)
    assert [(a["activityName"], a["status"]) for a in rows] == [("GetRows", "Failed")]
    assert rows[0]["error"] == {
        "errorCode": "2100",
        "message": "Timeout after 00:10:00 waiting for the lookup",
        "failureType": "SystemError",
        "target": "GetRows",
    }


async def test_a_succeeded_run_has_every_activity_succeeded(adf_for: AdfFor) -> None:
    adf, served = await adf_for(CONFIG, run_queued_ms=0, run_duration_ms=1000)
    run_id = await adf.run_id("LoadOrders")
    served.manual_clock.advance(2)
    rows = await activities(adf, run_id)
    assert [a["status"] for a in rows] == ["Succeeded", "Succeeded"]
    assert sum(a["durationInMs"] for a in rows) == 1000
    assert (await adf.get(run_id))["status"] == "Succeeded"


async def test_the_window_filters_activity_runs(adf_for: AdfFor) -> None:
    adf, served = await adf_for(CONFIG, run_queued_ms=0, run_duration_ms=1000)
    run_id = await adf.run_id("LoadOrders")
    served.manual_clock.advance(2)
    past = {"lastUpdatedAfter": "2000-01-01T00:00:00Z", "lastUpdatedBefore": "2001-01-01T00:00:00Z"}
    assert await activities(adf, run_id, past) == []
    status, body, _ = await adf.call("POST", f"/pipelineruns/{run_id}/queryActivityruns", body={})
    assert cloud_error((status, body), 400)["code"] == "BadRequest"


async def test_activity_runs_of_an_unknown_run_are_a_404(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(CONFIG)
    status, body, _ = await adf.call(
        "POST", "/pipelineruns/00000000-0000-0000-0000-000000000000/queryActivityruns", body=WIDE
    )
    assert cloud_error((status, body), 404)["code"] == "PipelineRunNotFound"


async def test_a_cancel_cancels_the_running_activity_and_counts_is_recursive(
    adf_for: AdfFor,
) -> None:
    adf, served = await adf_for(CONFIG, run_queued_ms=0, cancel_ms=500)
    run_id = await adf.run_id("Slow")
    served.manual_clock.advance(1)
    status, _, _ = await adf.call(
        "POST", f"/pipelineruns/{run_id}/cancel", query={"isRecursive": "true"}
    )
    assert status == 200
    assert (await adf.get(run_id))["status"] == "Canceling"
    served.manual_clock.advance(1)
    assert (await adf.get(run_id))["status"] == "Cancelled"
    assert [a["status"] for a in await activities(adf, run_id)] == ["Cancelled"]
    finished = await adf.call("POST", f"/pipelineruns/{run_id}/cancel")
    assert cloud_error(finished[:2], 400)["code"] == "PipelineRunNotRunning"
    assert served.state.stats.snapshot()["cancels"] == {"recursive": 1, "not_recursive": 1}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{failure_rate: 2}", "probability"),
        ("{duration_ms: -1}", "milliseconds"),
        ("{activities: []}", "non-empty list"),
        ("{activities: [{name: A}, {name: a}]}", "unique"),
        ("{failure: {code: 2200}}", "quote codes"),
    ],
)
def test_bad_pipeline_timing_or_failure_is_a_config_error(body: str, message: str) -> None:
    config = CONFIG.replace("LoadOrders: {}", f"LoadOrders: {body}")
    with pytest.raises(ConfigError, match=message):
        topology(config)
