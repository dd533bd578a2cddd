"""Exactly once: a lost createRun response is looked up in ADF before the run is posted again."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from batchrun.arm.client import CreateRunResponse, QueryResponse, RateLimits
from batchrun.arm.retry import RetrySettings
from batchrun.errors import ApiError, TransportError
from batchrun.model import RunSpec
from batchrun.run.progress import Progress
from batchrun.run.reconcile import ReconcileSettings, parameters_match
from batchrun.run.scheduler import SchedulerSettings
from tests.helpers.scheduling import report_lines, scheduler_writing

if TYPE_CHECKING:
    from pathlib import Path

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


def wire_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "1Z"


class FakeAdf:
    """Creates runs, then loses the answer as told; queries see runs after `hidden_for` looks."""

    def __init__(
        self,
        *,
        faults: list[str] | None = None,
        hidden_for: int = 0,
        skew: timedelta | None = None,
        defaults: dict[str, str] | None = None,
        spelling: str | None = None,
    ) -> None:
        self.faults = faults or []
        self.hidden_for = hidden_for
        # the server's clock minus ours; None: answers carry no Date header
        self.skew = skew
        self.defaults = defaults or {}  # listed in a run's parameters when not sent
        self.spelling = spelling  # the pipeline's name as ADF spells it
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
        parameters = self.defaults | {k: adf_string(v) for k, v in run_spec.parameters.items()}
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
                "pipelineName": self.spelling or run_spec.pipeline,
                "parameters": parameters,
                "invokedBy": {"name": "Manual", "invokedByType": "Manual"},
                "runStart": wire_time(self.server_now()),
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
        date = None if self.skew is None else self.server_now().replace(microsecond=0)
        return QueryResponse(visible, None, RateLimits(reads=1000), None, server_date=date)

    def server_now(self) -> datetime:
        return datetime.now(UTC) + (self.skew or timedelta(0))

    def seed_manual_run(self, run_spec: RunSpec, *, started_ago: timedelta) -> str:
        """Someone else's manual run of the same pipeline and parameters, started earlier."""
        run_id = f"foreign-{uuid.uuid4()}"
        self.runs.append(
            {
                "runId": run_id,
                "runGroupId": run_id,
                "spec_id": None,
                "pipelineName": run_spec.pipeline,
                "parameters": {k: adf_string(v) for k, v in run_spec.parameters.items()},
                "invokedBy": {"name": "Manual", "invokedByType": "Manual"},
                "runStart": wire_time(self.server_now() - started_ago),
                "status": "Failed",
                "visible_after": -1,
            }
        )
        return run_id

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
    ours = spec("a")
    other = spec("a", parameters=ours.parameters | {"day": "2026-11-27"})
    # someone else's manual run of our pipeline, unclaimed, started as we post: it differs from
    # ours in its parameters only (with ours, it would be taken: the control below)
    for lookalike, taken in ((other, False), (ours, True)):
        adf = FakeAdf(faults=["503-before"], skew=timedelta(0))
        foreign = adf.seed_manual_run(lookalike, started_ago=timedelta(0))
        report_dir = tmp_path / str(taken)
        report_dir.mkdir()
        (line,) = await run_batch(report_dir, adf, [ours], look=ReconcileSettings(window_s=0.0))
        assert (line["run_id"] == foreign) is taken
        assert line.get("reconciled", False) is taken
        assert len(adf.created(ours)) == (0 if taken else 1)


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


class FilteringAdf(FakeAdf):
    """Answers queries as ADF does, with only the runs that pass the filters sent (PipelineName
    and RunGroupId ``Equals``), unless told to ignore them; keeps each query's filters."""

    def __init__(self, *, honours_filters: bool, **settings: Any) -> None:
        super().__init__(**settings)
        self.honours_filters = honours_filters
        self.filters: list[list[dict[str, Any]]] = []

    async def query_pipeline_runs(self, **kwargs: Any) -> QueryResponse:
        filters = list(kwargs["filter_parameters"].get("filters", []))
        self.filters.append(filters)
        page = await super().query_pipeline_runs(**kwargs)
        if not self.honours_filters:
            return page
        operands = {"PipelineName": "pipelineName", "RunGroupId": "runGroupId"}
        kept = [
            run
            for run in page.value
            if all(run[operands[f["operand"]]] in f["values"] for f in filters)
        ]
        return dataclasses.replace(page, value=kept)


# ignoring the filter: the group is checked in what comes back too (ADF's filters are lax)
@pytest.mark.parametrize("honours_filters", [True, False])
async def test_a_recovery_rerun_is_matched_in_the_reference_group_only(
    tmp_path: Path, honours_filters: bool
) -> None:
    adf = FilteringAdf(faults=["drop"], skew=timedelta(0), honours_filters=honours_filters)
    reference = adf.seed_reference({"day": "2026-11-20"})
    # an unclaimed manual rerun of the same run without isRecovery: same pipeline, parameters
    # and time as ours, in a group of its own
    foreign = adf.seed_manual_run(
        spec("foreign", parameters={"day": "2026-11-20"}), started_ago=timedelta(0)
    )
    recovery = spec("recovery", reference_run_id=reference, is_recovery=True, parameters={})
    (line,) = await run_batch(tmp_path, adf, [recovery])
    (ours,) = adf.created(recovery)
    assert ours["runGroupId"] == reference
    assert (line["reconciled"], line["run_id"]) == (True, ours["runId"])
    assert line["run_id"] != foreign
    # the group is asked for, not only checked in what comes back
    group = {"operand": "RunGroupId", "operator": "Equals", "values": [reference]}
    assert adf.filters and all(group in filters for filters in adf.filters)


async def test_a_run_is_found_under_adfs_spelling_of_the_pipeline_and_with_its_defaults(
    tmp_path: Path,
) -> None:
    adf = FakeAdf(faults=["drop"], spelling="loadorders", defaults={"retries": "3", "day": "x"})
    (line,) = await run_batch(tmp_path, adf, [spec("a")])
    assert len(adf.runs) == 1
    assert adf.runs[0]["parameters"]["retries"] == "3"
    assert (line["reconciled"], line["run_id"]) == (True, adf.runs[0]["runId"])


class OverlapAdf(FakeAdf):
    """Measures how many createRun calls are on the wire at once."""

    def __init__(self) -> None:
        super().__init__()
        self.active = 0
        self.peak = 0

    async def create_run(self, run_spec: RunSpec, *, client_request_id: str) -> CreateRunResponse:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            for _ in range(5):
                await asyncio.sleep(0)
            return await super().create_run(run_spec, client_request_id=client_request_id)
        finally:
            self.active -= 1


async def test_entries_that_differ_only_in_the_case_of_names_are_run_one_after_the_other(
    tmp_path: Path,
) -> None:
    adf = OverlapAdf()
    twin = spec("b", factory="FACTORY-A", pipeline="loadorders", resource_group="RG")
    lines = await run_batch(tmp_path, adf, [spec("a"), twin])
    assert len(adf.runs) == 2 and len({line["run_id"] for line in lines}) == 2
    # one request in ADF's eyes: a lost answer of one must never be mistaken for the other's
    assert adf.peak == 1


@pytest.mark.parametrize("fault", ["503-before", "500-after"])
async def test_a_manual_run_started_before_our_first_attempt_is_not_taken_for_ours(
    tmp_path: Path, fault: str
) -> None:
    adf = FakeAdf(faults=[fault], skew=timedelta(0))
    foreign = adf.seed_manual_run(spec("a"), started_ago=timedelta(minutes=3))
    (line,) = await run_batch(tmp_path, adf, [spec("a")], look=ReconcileSettings(window_s=0.0))
    ours = adf.created(spec("a"))
    assert line["run_id"] != foreign
    assert line["run_id"] == ours[0]["runId"]
    assert len(ours) == 1


@pytest.mark.parametrize("skew", [timedelta(hours=-3), timedelta(minutes=-4), timedelta(hours=2)])
async def test_the_window_starts_at_our_first_attempt_on_the_servers_clock(
    tmp_path: Path, skew: timedelta
) -> None:
    adf = FakeAdf(faults=["drop"], skew=skew)
    foreign = adf.seed_manual_run(spec("a"), started_ago=timedelta(seconds=20))
    (line,) = await run_batch(tmp_path, adf, [spec("a")])
    ours = adf.created(spec("a"))
    assert len(ours) == 1
    assert (line["reconciled"], line["run_id"]) == (True, ours[0]["runId"])
    assert line["run_id"] != foreign


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
        # the pipeline's defaults for parameters we did not send may be listed too
        ({"a": "x"}, {"a": "x", "b": "y"}, True),
        ({}, {"b": "y"}, True),
        ({"a": "x", "b": "y"}, {"a": "x"}, False),
        ({"a": [1]}, {"a": "not json"}, False),
        ({}, {}, True),
        # .NET writes booleans True/False; JSON writes true/false
        ({"a": True}, {"a": "True"}, True),
        ({"a": False}, {"a": "False"}, True),
        ({"a": False}, {"a": "True"}, False),
        ({"a": True}, {"a": "1"}, False),
        ({"a": 1}, {"a": "true"}, False),
        ({"a": {"k": True}}, {"a": '{"k": 1}'}, False),
        # numbers by value, whatever the notation
        ({"a": 1.0}, {"a": "1"}, True),
        ({"a": 1}, {"a": "1.0"}, True),
        ({"a": 0.5}, {"a": "5E-1"}, True),
        ({"a": [1, 2.0]}, {"a": "[1.0,2]"}, True),
        ({"a": 1}, {"a": '"1"'}, False),
        # a string is compared as written: it is what ADF stores
        ({"a": "1"}, {"a": "1.0"}, False),
        ({"a": "x"}, {"a": "X"}, False),
        # YAML dates are sent (and so listed) as ISO 8601
        ({"a": dt.date(2026, 11, 26)}, {"a": "2026-11-26"}, True),
        ({"a": datetime(2026, 11, 26, 2, tzinfo=UTC)}, {"a": "2026-11-26T02:00:00+00:00"}, True),
    ],
)
def test_parameters_match_adf_string_form(
    ours: dict[str, Any], theirs: dict[str, str], same: bool
) -> None:
    assert parameters_match(ours, theirs) is same
