"""Exactly once: a lost createRun response is looked up in ADF before the run is posted again."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from batchrun.arm.client import CreateRunResponse, QueryResponse, RateLimits
from batchrun.arm.retry import RetrySettings
from batchrun.errors import ApiError, TransportError
from batchrun.model import RunSpec
from batchrun.run.progress import Progress
from batchrun.run.reconcile import ReconcileSettings, parameters_match
from batchrun.run.scheduler import SchedulerSettings
from tests.helpers.scheduling import report_lines, scheduler_writing

FAST_RETRY = RetrySettings(max_attempts=5, backoff_initial_s=0.001, backoff_max_s=0.002)
QUICK_LOOK = ReconcileSettings(window_s=2.0, first_poll_s=0.001, max_poll_s=0.005)


def spec(run_id: str, **fields: Any) -> RunSpec:
    values: dict[str, Any] = {
        "id": run_id,
        "subscription": "sub",
        "resource_group": "rg",
        "factory": "factory-a",
        "pipeline": "LoadOrders",
        "parameters": {"day": "2026-11-26", "parts": [1, 2], "full": True},
    }
    return RunSpec(**(values | fields))


def adf_string(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class FakeAdf:
    """Creates runs, then loses the answer as told; queries see runs after `hidden_for` looks."""

    def __init__(self, *, faults: list[str] | None = None, hidden_for: int = 0) -> None:
        self.faults = faults or []
        self.hidden_for = hidden_for
        self.runs: list[dict[str, Any]] = []
        self.looks = 0
        self.read_error: ApiError | None = None
        self.references: dict[str, dict[str, Any]] = {}

    def created(self, run_spec: RunSpec) -> list[dict[str, Any]]:
        return [run for run in self.runs if run["spec_id"] == run_spec.id]

    async def create_run(self, run_spec: RunSpec, *, client_request_id: str) -> CreateRunResponse:
        fault = self.faults.pop(0) if self.faults else "ok"
        if fault == "503-before":
            raise ApiError(status=503, code="ServiceUnavailable", message="m", transient=True)
        run_id = str(uuid.uuid4())
        parameters = {k: adf_string(v) for k, v in run_spec.parameters.items()}
        group = run_id
        if run_spec.reference_run_id is not None:
            # like ADF: the reference run's parameters, the body ignored
            reference = self.references[run_spec.reference_run_id]
            parameters = reference["parameters"]
            group = reference["runGroupId"] if run_spec.is_recovery else run_id
        self.runs.append(
            {
                "runId": run_id,
                "runGroupId": group,
                "spec_id": run_spec.id,
                "pipelineName": run_spec.pipeline,
                "parameters": parameters,
                "invokedBy": {"name": "Manual", "invokedByType": "Manual"},
                "runStart": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "1Z",
                "visible_after": self.looks + self.hidden_for,
            }
        )
        if fault == "drop":
            raise TransportError(
                status=None, code="ServerDisconnected", message="m", transient=True, sent=True
            )
        if fault == "500-after":
            raise ApiError(status=500, code="InternalServerError", message="m", transient=True)
        return CreateRunResponse(run_id, 200, None, None, RateLimits(writes=100))

    async def query_pipeline_runs(self, **_: Any) -> QueryResponse:
        self.looks += 1
        if self.read_error is not None:
            raise self.read_error
        visible = [run for run in self.runs if run["visible_after"] < self.looks]
        return QueryResponse(visible, None, RateLimits(reads=1000), None)

    async def get_pipeline_run(self, *, run_id: str, **_: Any) -> dict[str, Any]:
        return self.references[run_id]

    def seed_reference(self, parameters: dict[str, str]) -> str:
        run_id = str(uuid.uuid4())
        self.references[run_id] = {
            "runId": run_id,
            "runGroupId": run_id,
            "pipelineName": "LoadOrders",
            "status": "Failed",
            "isLatest": True,
            "runStart": "2026-11-25T23:00:00.0000000Z",
            "parameters": parameters,
        }
        return run_id


async def run_batch(
    tmp_path: Path, adf: FakeAdf, runs: list[RunSpec], *, look: ReconcileSettings = QUICK_LOOK
) -> list[dict[str, Any]]:
    report = tmp_path / "report.jsonl"
    settings = SchedulerSettings(concurrency=4, retry=FAST_RETRY, reconcile=look)
    progress = Progress(total=len(runs))
    with scheduler_writing(report, adf, settings=settings, progress=progress) as scheduler:
        await scheduler.run(runs)
    return report_lines(report)


async def test_a_dropped_response_is_found_and_not_posted_again(tmp_path: Path) -> None:
    adf = FakeAdf(faults=["drop"])
    (line,) = await run_batch(tmp_path, adf, [spec("a")])
    assert len(adf.runs) == 1
    assert line["status"] == "succeeded"
    assert line["run_id"] == adf.runs[0]["runId"]
    assert line["reconciled"] is True
    assert line["attempts"] == 1


async def test_a_5xx_after_create_is_found_and_not_posted_again(tmp_path: Path) -> None:
    adf = FakeAdf(faults=["500-after"])
    (line,) = await run_batch(tmp_path, adf, [spec("a")])
    assert len(adf.runs) == 1
    assert line["reconciled"] is True


async def test_a_run_that_shows_up_late_is_still_found(tmp_path: Path) -> None:
    adf = FakeAdf(faults=["drop"], hidden_for=3)
    (line,) = await run_batch(tmp_path, adf, [spec("a")])
    assert len(adf.runs) == 1
    assert line["reconciled"] is True
    assert adf.looks == 4


async def test_nothing_found_within_the_window_means_post_again(tmp_path: Path) -> None:
    adf = FakeAdf(faults=["503-before"])
    (line,) = await run_batch(tmp_path, adf, [spec("a")], look=ReconcileSettings(window_s=0.0))
    assert len(adf.runs) == 1
    assert line["status"] == "succeeded"
    assert "reconciled" not in line
    assert line["attempts"] == 2
    assert adf.looks == 1


async def test_two_identical_entries_make_two_runs_even_with_drops(tmp_path: Path) -> None:
    adf = FakeAdf(faults=["drop", "drop"])
    twin = spec("a").parameters
    lines = await run_batch(tmp_path, adf, [spec("a"), spec("b", parameters=twin)])
    assert len(adf.runs) == 2
    assert sorted(line["run_id"] for line in lines) == sorted(run["runId"] for run in adf.runs)


async def test_runs_with_other_parameters_are_not_taken(tmp_path: Path) -> None:
    adf = FakeAdf(faults=["ok", "503-before"])
    lines = await run_batch(
        tmp_path, adf, [spec("a"), spec("b", parameters={"day": "2026-11-27"})],
        look=ReconcileSettings(window_s=0.0),
    )  # fmt: skip
    assert len(adf.runs) == 2
    assert {line["id"]: line["run_id"] for line in lines} == {
        run["spec_id"]: run["runId"] for run in adf.runs
    }


async def test_when_adf_cannot_be_asked_the_run_fails_instead_of_posting_blind(
    tmp_path: Path,
) -> None:
    adf = FakeAdf(faults=["503-before"])
    adf.read_error = ApiError(status=403, code="AuthorizationFailed", message="no read")
    (line,) = await run_batch(tmp_path, adf, [spec("a")])
    assert adf.runs == []
    assert line["status"] == "failed"
    assert line["error"]["code"] == "ReconcileFailed"
    assert "AuthorizationFailed" in line["error"]["message"]


async def test_retries_exhausted_after_a_drop_still_finds_the_run(tmp_path: Path) -> None:
    adf = FakeAdf(faults=["drop"])
    retry = RetrySettings(max_attempts=1)
    report = tmp_path / "r.jsonl"
    settings = SchedulerSettings(concurrency=1, retry=retry, reconcile=QUICK_LOOK)
    with scheduler_writing(report, adf, settings=settings, progress=Progress(total=1)) as scheduler:
        await scheduler.run([spec("a")])
    (line,) = report_lines(report)
    assert line["status"] == "succeeded"
    assert line["reconciled"] is True
    assert len(adf.runs) == 1


async def test_a_rerun_is_matched_on_the_reference_runs_parameters(tmp_path: Path) -> None:
    adf = FakeAdf(faults=["drop"])
    reference = adf.seed_reference({"day": "2026-11-20"})
    # the entry's own parameters are ignored by ADF when a reference run is given
    rerun = spec("a", reference_run_id=reference, parameters={"day": "ignored"})
    (line,) = await run_batch(tmp_path, adf, [rerun])
    assert len(adf.runs) == 1
    assert line["reconciled"] is True
    assert line["run_id"] == adf.runs[0]["runId"]


async def test_a_recovery_rerun_is_matched_in_the_reference_group_only(tmp_path: Path) -> None:
    adf = FakeAdf(faults=["ok", "drop"])
    reference = adf.seed_reference({"day": "2026-11-20"})
    plain = spec("plain", parameters={"day": "2026-11-20"})
    recovery = spec("recovery", reference_run_id=reference, is_recovery=True, parameters={})
    lines = await run_batch(tmp_path, adf, [plain, recovery])
    # the plain run has the same parameters, but it is not in the reference's group
    assert len(adf.runs) == 2
    assert {line["id"]: line["run_id"] for line in lines} == {
        run["spec_id"]: run["runId"] for run in adf.runs
    }
    assert [run["runGroupId"] for run in adf.runs if run["spec_id"] == "recovery"] == [reference]


@pytest.mark.parametrize(
    ("ours", "theirs", "same"),
    [
        ({"a": "x"}, {"a": "x"}, True),
        ({"a": 1}, {"a": "1"}, True),
        ({"a": [1, 2]}, {"a": "[1,2]"}, True),
        ({"a": [1, 2]}, {"a": "[1, 2]"}, True),
        ({"a": {"k": True}}, {"a": '{"k":true}'}, True),
        ({"a": True}, {"a": "true"}, True),
        ({"a": "1"}, {"a": "1"}, True),
        ({"a": 1}, {"a": "2"}, False),
        ({"a": "x"}, {"a": "x", "b": "y"}, False),
        ({"a": "x", "b": "y"}, {"a": "x"}, False),
        ({"a": [1]}, {"a": "not json"}, False),
        ({}, {}, True),
    ],
)
def test_parameters_match_adf_string_form(
    ours: dict[str, Any], theirs: dict[str, str], same: bool
) -> None:
    assert parameters_match(ours, theirs) is same
