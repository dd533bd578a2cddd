"""How a followed run ended, as a report line: the outcome line, its failure, its ADF Studio link.

A run whose trigger succeeded gets one more report line when it ends. That line repeats the
trigger line (so it keeps ``status: succeeded``: the trigger did succeed, and ``--resume`` must
never trigger the run again) and adds:

``outcome``
    ``Succeeded``, ``Failed``, ``Cancelled`` (ADF's end), or ``TimedOut`` (``--timeout`` passed
    first: with ``--on-timeout cancel`` the run was cancelled, with ``report`` it was left alone).
``run_start``, ``run_end``, ``run_duration_ms``
    ADF's ``runStart``, ``runEnd`` (for a cancelled run, which ADF leaves without one, its
    ``lastUpdated``) and ``durationInMs``; ``null`` when not known (a run timed out still running).
``queued_ms``
    Time from ``runStart`` until the run was first seen running (the first activity's start, for
    a run whose activities were read); ``null`` when it was never seen in between.
``monitor_url``
    The run in ADF Studio's monitoring view.
``failure``
    For a failed run: ``{activity, activity_type, code, message, failure_type}`` of its first
    failed activity (``queryActivityruns``); without activity runs, the run's own message.
``run_status``
    ADF's status when the line was written (``InProgress`` for a run that timed out running).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from batchrun.model import FactoryRef
from batchrun.report.reader import read_records
from batchrun.times import parse_time, utc_iso

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime, timedelta
    from pathlib import Path

SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
CANCELLED: Final = "Cancelled"
TIMED_OUT: Final = "TimedOut"
OUTCOMES: Final = (SUCCEEDED, FAILED, CANCELLED, TIMED_OUT)
# ADF's terminal statuses; "Canceled" is a spelling some API versions and SDKs use
TERMINAL: Final = {"succeeded": SUCCEEDED, "failed": FAILED, "cancelled": CANCELLED}
TERMINAL["canceled"] = CANCELLED
STUDIO: Final = "https://adf.azure.com/en/monitoring/pipelineruns"


def terminal(status: str | None) -> str | None:
    """ADF's status as an outcome when the run has ended; ``None`` while it has not."""
    return TERMINAL.get(status.casefold()) if isinstance(status, str) else None


def monitor_url(factory: FactoryRef, run_id: str) -> str:
    """The run's page in ADF Studio's monitoring view."""
    resource = (
        f"/subscriptions/{factory.subscription}/resourceGroups/{factory.resource_group}"
        f"/providers/Microsoft.DataFactory/factories/{factory.factory}"
    )
    return f"{STUDIO}/{quote(run_id, safe='')}?factory={quote(resource, safe='/')}"


@dataclass(frozen=True, slots=True)
class Followed:
    """A run to follow: what its trigger line said."""

    id: str
    factory: FactoryRef
    pipeline: str
    run_id: str
    sent_at: datetime
    """When its createRun left (the trigger line's ``started_at``): no update of it is older."""
    triggered_at: datetime
    """When its createRun was answered (``finished_at``): ``--timeout`` counts from here."""
    record: Mapping[str, Any]
    """The trigger line, repeated in the outcome line."""
    timed_out: bool = False
    """Its last line already says ``TimedOut``: a second one would say nothing new."""

    @property
    def key(self) -> str:
        return self.run_id.lower()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a report's last lines say about a night: the exit code of ``--wait``/``watch``."""

    runs: int
    succeeded: int
    not_triggered: int
    unfinished: int
    outcomes: Mapping[str, int]

    @property
    def ok(self) -> bool:
        return self.succeeded == self.runs


def last_lines(path: Path) -> dict[str, dict[str, Any]]:
    """The last line of every id of a report, in the order of those last lines."""
    last: dict[str, dict[str, Any]] = {}
    for record in read_records(path):
        run_id = record.get("id")
        if isinstance(run_id, str):
            last.pop(run_id, None)
            last[run_id] = record
    return last


def to_follow(last: Mapping[str, Mapping[str, Any]]) -> list[Followed]:
    """The runs whose trigger succeeded and whose end no line tells yet.

    A run that timed out still running (``--on-timeout report``) is followed again: it may have
    ended since.
    """
    runs: list[Followed] = []
    for run_id, record in last.items():
        outcome = record.get("outcome")
        timed_out = outcome == TIMED_OUT and terminal(record.get("run_status")) is None
        if outcome is not None and not timed_out:
            continue
        followed = _followed(run_id, record, timed_out=timed_out)
        if followed is not None:
            runs.append(followed)
    return runs


def _followed(id_: str, record: Mapping[str, Any], *, timed_out: bool) -> Followed | None:
    adf_id = record.get("run_id")
    names = [record.get(key) for key in ("subscription", "resource_group", "factory", "pipeline")]
    if record.get("status") != "succeeded" or not isinstance(adf_id, str) or not adf_id:
        return None
    if not all(isinstance(name, str) and name for name in names):
        return None
    sent = parse_time(record.get("started_at"))
    answered = parse_time(record.get("finished_at")) or sent
    if sent is None or answered is None:
        return None
    subscription, group, factory, pipeline = (str(name) for name in names)
    return Followed(
        id=id_,
        factory=FactoryRef(subscription, group, factory),
        pipeline=pipeline,
        run_id=adf_id,
        sent_at=sent,
        triggered_at=answered,
        record=dict(record),
        timed_out=timed_out,
    )


def verdict(last: Mapping[str, Mapping[str, Any]]) -> Verdict:
    outcomes: dict[str, int] = {}
    not_triggered = unfinished = 0
    for record in last.values():
        if record.get("already_succeeded") is True:
            # --only-missing found it succeeded in ADF already: nothing left to do for it
            outcomes[SUCCEEDED] = outcomes.get(SUCCEEDED, 0) + 1
            continue
        if record.get("status") != "succeeded":
            not_triggered += 1
            continue
        outcome = record.get("outcome")
        if not isinstance(outcome, str):
            unfinished += 1
            continue
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return Verdict(
        runs=len(last),
        succeeded=outcomes.get(SUCCEEDED, 0),
        not_triggered=not_triggered,
        unfinished=unfinished,
        outcomes=outcomes,
    )


def first_failure(activities: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The first failed activity's error, or ``None`` when no activity failed.

    First by start, then by end: a ForEach or Execute Pipeline fails *because* an activity inside
    it failed, and that one started later; the earliest failure is where to look first. A tie
    goes to the one with an error code (the container's is often empty).
    """
    failed = [row for row in activities if str(row.get("status", "")).casefold() == "failed"]
    if not failed:
        return None

    def key(row: Mapping[str, Any]) -> tuple[str, str, int]:
        error = row.get("error") if isinstance(row.get("error"), dict) else {}
        return (
            str(row.get("activityRunStart") or ""),
            str(row.get("activityRunEnd") or ""),
            0 if (error or {}).get("errorCode") else 1,
        )

    row = min(failed, key=key)
    error = row.get("error") if isinstance(row.get("error"), dict) else {}
    error = error or {}
    return {
        "activity": _text(row.get("activityName")),
        "activity_type": _text(row.get("activityType")),
        "code": _text(error.get("errorCode")),
        "message": _text(error.get("message")),
        "failure_type": _text(error.get("failureType")),
    }


def failure_from_run(message: Any) -> dict[str, Any]:
    """A failure when the activity runs could not be read: the run's own message."""
    return {
        "activity": None,
        "activity_type": None,
        "code": None,
        "message": _text(message),
        "failure_type": None,
    }


def first_activity_start(activities: Iterable[Mapping[str, Any]]) -> datetime | None:
    starts = [parse_time(row.get("activityRunStart"), naive_is_utc=True) for row in activities]
    present = [start for start in starts if start is not None]
    return min(present) if present else None


def outcome_record(
    followed: Followed,
    *,
    outcome: str,
    run: Mapping[str, Any] | None,
    running_since: datetime | None,
    failure: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report line for a run that ended (or timed out): its trigger line, and how it went.

    ``run`` is ADF's PipelineRun as last read (``None`` when it was never seen);
    ``running_since`` when it was first known to be running.
    """
    run = run or {}
    start = parse_time(run.get("runStart"), naive_is_utc=True)
    status = run.get("status") if isinstance(run.get("status"), str) else None
    end = parse_time(run.get("runEnd"), naive_is_utc=True)
    if end is None and terminal(status) is not None:
        end = parse_time(run.get("lastUpdated"), naive_is_utc=True)
    duration = run.get("durationInMs")
    if not isinstance(duration, int) or isinstance(duration, bool):
        duration = _ms(end - start) if start is not None and end is not None else None
    queued = None
    if start is not None and running_since is not None:
        queued = max(0, _ms(running_since - start))
    record = dict(followed.record)
    record.update(
        {
            "outcome": outcome,
            "run_status": status,
            "run_start": None if start is None else utc_iso(start),
            "run_end": None if end is None else utc_iso(end),
            "run_duration_ms": duration,
            "queued_ms": queued,
            "monitor_url": monitor_url(followed.factory, followed.run_id),
        }
    )
    record.pop("failure", None)
    if failure is not None:
        record["failure"] = dict(failure)
    return record


def _ms(delta: timedelta) -> int:
    return round(delta.total_seconds() * 1000)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
