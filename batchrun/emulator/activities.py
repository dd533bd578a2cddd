"""queryActivityruns: the activity runs of one pipeline run, derived from the run's timeline.

A pipeline's activities (configured, else a Lookup then a Copy) run one after another, splitting
the run's InProgress phase evenly. A run that ends Failed fails in one activity (configured, else
the last) with an error as ADF reports it (``errorCode``, ``message``, ``failureType``,
``target``); activities after it never start. A cancel cancels the activity running at the time.
Nothing is stored per activity: every answer is computed from the run and the clock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from batchrun.emulator.config import ActivityFailure, ActivitySpec, PipelineSpec
from batchrun.emulator.store import CANCELLED, FAILED, IN_PROGRESS, NEVER, SUCCEEDED, Run
from batchrun.emulator.wire import TICKS_PER_SECOND, bad_request, format_time, parse_time

_TICKS_PER_MS = TICKS_PER_SECOND // 1000

# A Copy activity's most common failure, worded as ADF words it (error 2200, a user error)
DEFAULT_CODE = "2200"
DEFAULT_FAILURE_TYPE = "UserError"
DEFAULT_MESSAGE = (
    "ErrorCode=UserErrorSourceBlobNotExist,'Type=Microsoft.DataTransfer.Common.Shared."
    "HybridDeliveryException,Message=The required Blob is missing. ContainerName: "
    "https://examplestorage.blob.core.windows.net/landing, ContainerExist: True, BlobPrefix: "
    "{pipeline}/, BlobCount: 0.,Source=Microsoft.DataTransfer.ClientLibrary,'"
)


@dataclass(frozen=True, slots=True)
class Plan:
    """A pipeline's activities and which one fails, with what."""

    activities: tuple[ActivitySpec, ...]
    failing: int
    code: str
    message: str
    failure_type: str

    @classmethod
    def of(cls, pipeline: PipelineSpec | None, name: str) -> Plan:
        activities = pipeline.activities if pipeline is not None else ()
        if not activities:
            activities = (
                ActivitySpec(f"Lookup{_suffix(name)}", "Lookup"),
                ActivitySpec(f"Copy{_suffix(name)}", "Copy"),
            )
        failure = (pipeline.failure if pipeline is not None else None) or ActivityFailure()
        failing = len(activities) - 1
        if failure.activity is not None:
            names = [a.name.casefold() for a in activities]
            if failure.activity.casefold() in names:
                failing = names.index(failure.activity.casefold())
        return cls(
            activities=activities,
            failing=failing,
            code=failure.code or DEFAULT_CODE,
            message=failure.message or DEFAULT_MESSAGE.format(pipeline=name),
            failure_type=failure.failure_type or DEFAULT_FAILURE_TYPE,
        )

    def run_message(self) -> str:
        """The pipeline run's own message when it fails, as ADF builds it from the activity's."""
        return f"Operation on target {self.activities[self.failing].name} failed: {self.message}"


def _suffix(name: str) -> str:
    return "".join(ch for ch in name if ch.isalnum() or ch == "_")[:60] or "Data"


def activity_runs(run: Run, plan: Plan, now: int) -> list[dict[str, Any]]:
    """The activity runs of ``run`` that have started by ``now``, in start order."""
    if now < run.progress_at or run.progress_at >= NEVER:
        return []
    failed = run.outcome == FAILED
    count = plan.failing + 1 if failed else len(plan.activities)
    span = max(run.end_at - run.progress_at, 0)
    rows: list[dict[str, Any]] = []
    for index in range(count):
        start = run.progress_at + span * index // count
        end = run.progress_at + span * (index + 1) // count
        if start > now or start >= run.cancel_at:
            break
        status = IN_PROGRESS
        finish: int | None = None
        if run.cancel_at < end and now >= run.cancel_at:
            status, finish = CANCELLED, run.cancelled_at
            if now < run.cancelled_at:
                status, finish = IN_PROGRESS, None
        elif now >= end:
            status, finish = SUCCEEDED, end
            if failed and index == plan.failing:
                status = FAILED
        rows.append(_row(run, plan, index, start, finish, status))
    return rows


def _row(
    run: Run, plan: Plan, index: int, start: int, end: int | None, status: str
) -> dict[str, Any]:
    activity = plan.activities[index]
    error = {"errorCode": "", "message": "", "failureType": "", "target": activity.name}
    if status == FAILED:
        error |= {"errorCode": plan.code, "message": plan.message, "failureType": plan.failure_type}
    row: dict[str, Any] = {
        "activityName": activity.name,
        "activityRunStart": format_time(start),
        "activityType": activity.type,
        "error": error,
        # stable across reads of the same run
        "activityRunId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{run.run_id}/{index}")),
        "input": {},
        "linkedServiceName": "",
        "output": {},
        "userProperties": {},
        "pipelineName": run.pipeline_name,
        "pipelineRunId": run.run_id,
        "status": status,
    }
    if end is not None:
        # a running activity has neither yet (the swagger's strings cannot be null)
        row["activityRunEnd"] = format_time(end)
        row["durationInMs"] = (end - start) // _TICKS_PER_MS
    return row


def query_activities(run: Run, plan: Plan, body: object, now: int) -> dict[str, Any]:
    """The answer to queryActivityruns: the activity runs updated inside the body's window."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a RunFilterParameters JSON object.")
    after = parse_time(body.get("lastUpdatedAfter"), field="lastUpdatedAfter")
    before = parse_time(body.get("lastUpdatedBefore"), field="lastUpdatedBefore")
    rows = []
    for row in activity_runs(run, plan, now):
        updated = parse_time(row.get("activityRunEnd", row["activityRunStart"]), field="activity")
        if after <= updated <= before:
            rows.append(row)
    return {"value": rows}
