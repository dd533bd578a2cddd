"""A seeded run history for recovery tests, and what recovering it must give.

``build_history(now)`` makes ~300 runs over 4 factories in 2 subscriptions, group by group from a
table of scenarios (plain failures, cancelled runs, groups rerun and succeeded / failed again /
still running, runs outside the window, more than 100 matching runs in one factory). The
emulator reads it with ``--history`` (``History.write``); ``History.expected`` says, from this
model alone, which groups must be recovered from which run and which must be skipped.
"""

from __future__ import annotations

import fnmatch
import json
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from batchrun.model import FactoryRef, RunSpec
from batchrun.recover.search import FROM_FAILURE, StartPoint

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

SUB_A = "11111111-1111-1111-1111-111111111111"
SUB_B = "22222222-2222-2222-2222-222222222222"
FACTORIES = (
    FactoryRef(SUB_A, "rg-data", "sales-eu"),
    FactoryRef(SUB_A, "rg-data", "sales-us"),
    FactoryRef(SUB_B, "rg-ops", "ops-core"),
    FactoryRef(SUB_B, "rg-data", "ops-edge"),
)
BIG = FACTORIES[0]  # gets more than a page (100) of matching runs
PIPELINES = ("LoadOrders", "BuildMarts", "ExportSales")
RUNNING = {"Queued", "InProgress", "Canceling"}
MESSAGES = (
    "Operation on target CopyOrders failed: Failure happened on 'Sink' side. "
    "ErrorCode=UserErrorFailedFileOperation,'Type=Microsoft.DataTransfer.Common.Shared."
    "HybridDeliveryException,Message=Upload file failed at path orders/2026/11/25, "
    "Source=Microsoft.DataTransfer.ClientLibrary,'",
    "Operation on target Notify failed:\nline two # not a comment: {\"a\": 'b'}\r\n\tend",
    "Blob storage unavailable: 503 ${HOME} $$ café ✓ — retry later",
    "",
)

RERUNS = ("rerun-succeeded", "rerun-failed-again", "rerun-cancelled")
# scenario: [(status, start offset from the window's start in minutes), ...] oldest first;
# a negative offset is before the window, one past the window's length after it
WINDOW = timedelta(hours=8)
_IN = (30, 420)  # minutes into the window where in-window runs start
SCENARIOS: dict[str, list[tuple[str, str]]] = {
    "failed": [("Failed", "in")],
    "cancelled": [("Cancelled", "in")],
    "rerun-succeeded": [("Failed", "in"), ("Succeeded", "in-later")],
    "rerun-succeeded-after-window": [("Failed", "in"), ("Succeeded", "after")],
    "rerun-failed-again": [("Failed", "in"), ("Failed", "in-later")],
    "three-attempts-failed": [("Failed", "in"), ("Cancelled", "in-later"), ("Failed", "after")],
    "three-attempts-succeeded": [("Failed", "in"), ("Failed", "in-later"), ("Succeeded", "after")],
    "rerun-failed-after-window": [("Failed", "in"), ("Failed", "after")],
    "rerun-cancelled": [("Failed", "in"), ("Cancelled", "in-later")],
    "rerun-in-progress": [("Failed", "in"), ("InProgress", "after")],
    "rerun-queued": [("Cancelled", "in"), ("Queued", "after")],
    "in-progress": [("InProgress", "in")],
    "succeeded": [("Succeeded", "in")],
    "failed-before-window": [("Failed", "before")],
    "failed-after-window": [("Failed", "after")],
    "started-before-window": [("Failed", "straddles-start")],
    "ended-after-window": [("Failed", "straddles-end")],
    "rerun-of-old-failure": [("Failed", "before"), ("Failed", "in")],
}


@dataclass(frozen=True)
class HistoryRun:
    factory: FactoryRef
    pipeline: str
    run_id: str
    group_id: str
    status: str
    run_start: datetime
    last_updated: datetime
    message: str
    scenario: str

    def to_history(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "factory": (
                f"/subscriptions/{self.factory.subscription}/resourceGroups/"
                f"{self.factory.resource_group}/providers/Microsoft.DataFactory/factories/"
                f"{self.factory.factory}"
            ),
            "pipelineName": self.pipeline,
            "runId": self.run_id,
            "runGroupId": self.group_id,
            "status": self.status,
            "runStart": _wire(self.run_start),
            "lastUpdated": _wire(self.last_updated),
            "parameters": {"partition": int(self.run_id[:4], 16) % 97},
            "message": self.message,
        }
        if self.status in ("Succeeded", "Failed"):
            entry["runEnd"] = _wire(self.last_updated)
        return entry


@dataclass(frozen=True)
class Expected:
    recover: dict[str, HistoryRun]  # reference runId -> the run to rerun
    skipped: dict[str, HistoryRun]  # group id -> the group's latest run (why it is skipped)


@dataclass
class History:
    now: datetime
    since: datetime
    until: datetime
    runs: list[HistoryRun] = field(default_factory=list)

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps([run.to_history() for run in self.runs], indent=1))
        return path

    def expected(
        self,
        statuses: Iterable[str] = ("Failed", "Cancelled"),
        pipelines: Iterable[str] = (),
        factories: Iterable[FactoryRef] = FACTORIES,
    ) -> Expected:
        """The rule, applied to the model: a group with a run of a wanted status, started and
        updated in the window, is recovered from its latest run when that run has a wanted
        status, and skipped otherwise."""
        wanted, patterns, scope = set(statuses), [p.casefold() for p in pipelines], set(factories)
        groups: dict[str, list[HistoryRun]] = defaultdict(list)
        for run in self.runs:
            groups[run.group_id].append(run)
        expected = Expected({}, {})
        for group, runs in groups.items():
            matching = [
                run
                for run in runs
                if run.factory in scope
                and run.status in wanted
                and self.since <= run.run_start < self.until
                and self.since <= run.last_updated <= self.until
                and (not patterns or any(fnmatch.fnmatchcase(run.pipeline.casefold(), p)
                                         for p in patterns))
            ]  # fmt: skip
            if not matching:
                continue
            latest = max(runs, key=lambda run: run.run_start)
            if latest.status in wanted:
                expected.recover[latest.run_id] = latest
            else:
                expected.skipped[group] = latest
        return expected

    def matching_in(self, factory: FactoryRef) -> int:
        return sum(
            1
            for run in self.runs
            if run.factory == factory
            and run.status in ("Failed", "Cancelled")
            and self.since <= run.run_start < self.until
            and self.since <= run.last_updated <= self.until
        )


def build_history(now: datetime, *, seed: int = 7, reruns: int = 0) -> History:
    """``reruns`` more groups in the big factory that were rerun since (their latest run decides:
    succeeded, failed again, cancelled, in turn)."""
    rng = random.Random(seed)
    until = (now - timedelta(hours=2)).replace(microsecond=0)
    history = History(now=now, since=until - WINDOW, until=until)
    counts = dict.fromkeys(SCENARIOS, 1)
    counts.update({"failed": 6, "cancelled": 3, "rerun-succeeded": 3, "rerun-failed-again": 2})
    for factory in FACTORIES:
        for scenario, count in counts.items():
            for _ in range(count):
                _group(history, rng, factory, scenario)
    for _ in range(110):  # plain failures: the big factory needs more than one page
        _group(history, rng, BIG, "failed")
    for n in range(reruns):
        _group(history, rng, BIG, RERUNS[n % len(RERUNS)])
    rng.shuffle(history.runs)
    return history


def _group(history: History, rng: random.Random, factory: FactoryRef, scenario: str) -> None:
    pipeline = rng.choice(PIPELINES)
    group_id = ""
    previous: datetime | None = None
    for status, where in SCENARIOS[scenario]:
        start = _start(history, rng, where, previous)
        run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        group_id = group_id or run_id
        if status in RUNNING:
            updated = start
        elif where == "straddles-end":
            updated = history.until + timedelta(minutes=rng.randint(1, 30))
        elif where == "straddles-start":
            updated = history.since + timedelta(minutes=rng.randint(1, 30))
        else:
            updated = start + timedelta(minutes=rng.randint(1, 9), seconds=rng.randint(0, 59))
        message = rng.choice(MESSAGES) if status in ("Failed", "Cancelled") else ""
        run = HistoryRun(
            factory, pipeline, run_id, group_id, status, start, updated, message, scenario
        )
        history.runs.append(run)
        previous = updated


def _start(history: History, rng: random.Random, where: str, previous: datetime | None) -> datetime:
    minutes = rng.randint(0, 59)
    seconds = timedelta(seconds=rng.randint(0, 59), microseconds=rng.randint(0, 999_999))
    if where == "in":
        return history.since + timedelta(minutes=rng.randint(*_IN)) + seconds
    if where == "in-later":
        assert previous is not None
        return previous + timedelta(minutes=rng.randint(1, 20)) + seconds
    if where == "after":
        base = max(history.until, previous or history.until)
        return base + timedelta(minutes=10 + minutes) + seconds
    if where == "before":
        return history.since - timedelta(hours=3, minutes=minutes) + seconds
    if where == "straddles-start":
        return history.since - timedelta(minutes=20 + minutes)
    assert where == "straddles-end"
    return history.until - timedelta(minutes=5 + minutes % 5)


def _wire(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def recovery_spec(run: HistoryRun, start: StartPoint = FROM_FAILURE) -> RunSpec:
    """The manifest entry that reruns ``run`` in its group, as ``batchrun recover`` writes it."""
    return RunSpec(
        id=f"recover-{run.run_id}",
        subscription=run.factory.subscription,
        resource_group=run.factory.resource_group,
        factory=run.factory.factory,
        pipeline=run.pipeline,
        reference_run_id=run.run_id,
        is_recovery=True,
        start_from_failure=True if start == FROM_FAILURE else None,
        start_activity_name=start.activity,
    )


def expected_specs(
    runs: Mapping[str, HistoryRun], start: StartPoint = FROM_FAILURE
) -> list[RunSpec]:
    ordered = sorted(
        runs.values(),
        key=lambda r: (r.factory.key, r.pipeline.casefold(), r.run_start, r.run_id),
    )
    return [recovery_spec(run, start) for run in ordered]
