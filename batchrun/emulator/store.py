"""Pipeline runs, indexed by factory, whose status is a function of time.

A run records when it moves Queued → InProgress → Succeeded/Failed (and when a cancel lands);
its status at any instant is computed from the clock, so no task runs per run and 100,000 runs
cost only their records. Every time is an int of ticks (100 ns), ADF's own resolution.
"""

from __future__ import annotations

import bisect
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batchrun.emulator.wire import wire_parameters

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

QUEUED = "Queued"
IN_PROGRESS = "InProgress"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
CANCELING = "Canceling"  # the spec's spelling (PipelineRun.status)
CANCELLED = "Cancelled"
STATUSES = (QUEUED, IN_PROGRESS, SUCCEEDED, FAILED, CANCELING, CANCELLED)
FINISHED = frozenset({SUCCEEDED, FAILED, CANCELLED})

NEVER = 2**62  # ticks; later than any clock reading

FactoryKey = tuple[str, str, str]  # casefolded subscription, resource group, factory


@dataclass(slots=True, eq=False)
class Run:
    seq: int
    run_id: str
    group_id: str
    pipeline_name: str
    parameters: dict[str, Any]
    wire_parameters: dict[str, str]
    invoked_by: str
    start_at: int  # runStart: when the run was created
    visible_at: int
    progress_at: int  # Queued → InProgress
    end_at: int  # InProgress → outcome
    outcome: str
    message: str
    end_updated_at: int  # lastUpdated once ended (history may say something else)
    cancel_at: int = NEVER
    cancelled_at: int = NEVER
    # this run's own phase lengths (a pipeline may override the settings'); ADF's queue re-plans
    # a waiting run's start with them
    queued_ticks: int = 0
    duration_ticks: int = 0
    invoked_by_type: str = "Manual"

    def state(self, now: int) -> tuple[str, int, int | None]:
        """(status, lastUpdated, runEnd) at ``now``."""
        if now >= self.cancel_at:
            if now >= self.cancelled_at:
                return CANCELLED, self.cancelled_at, None
            return CANCELING, self.cancel_at, None
        if now >= self.end_at:
            return self.outcome, self.end_updated_at, self.end_at
        if now >= self.progress_at:
            return IN_PROGRESS, self.progress_at, None
        return QUEUED, self.start_at, None


@dataclass(slots=True)
class FactoryRuns:
    by_id: dict[str, Run] = field(default_factory=dict)  # keyed by lower-case run id
    by_pipeline: dict[str, list[Run]] = field(default_factory=dict)  # keyed by casefold name
    groups: dict[str, list[Run]] = field(default_factory=dict)  # ordered by (runStart, seq)

    def add(self, run: Run) -> None:
        self.by_id[run.run_id.lower()] = run
        self.by_pipeline.setdefault(run.pipeline_name.casefold(), []).append(run)
        group = self.groups.setdefault(run.group_id.lower(), [])
        if not group or (group[-1].start_at, group[-1].seq) <= (run.start_at, run.seq):
            group.append(run)
        else:
            bisect.insort(group, run, key=lambda r: (r.start_at, r.seq))

    def is_latest(self, run: Run, now: int) -> bool:
        """The newest run of its recovery group that a reader can see."""
        for candidate in reversed(self.groups[run.group_id.lower()]):
            if candidate.visible_at <= now:
                return candidate is run
        return False

    def candidates(self, pipelines: Iterable[str] | None) -> Iterator[Run]:
        if pipelines is None:
            for runs in self.by_pipeline.values():
                yield from runs
            return
        for name in {name.casefold() for name in pipelines}:
            yield from self.by_pipeline.get(name, ())


@dataclass(frozen=True, slots=True)
class Timing:
    """Phase lengths, in ticks."""

    queued: int
    duration: int
    cancel: int
    visibility: int


class RunStore:
    def __init__(self, timing: Timing) -> None:
        self._timing = timing
        self._factories: dict[FactoryKey, FactoryRuns] = {}
        self._seq = 0

    def __len__(self) -> int:
        return sum(len(runs.by_id) for runs in self._factories.values())

    def existing(self, key: FactoryKey) -> FactoryRuns | None:
        return self._factories.get(key)

    def factory(self, key: FactoryKey) -> FactoryRuns:
        runs = self._factories.get(key)
        if runs is None:
            runs = self._factories[key] = FactoryRuns()
        return runs

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def create(
        self,
        key: FactoryKey,
        pipeline_name: str,
        parameters: dict[str, Any],
        *,
        now: int,
        failed: bool,
        group_of: Run | None = None,
        queued: int | None = None,
        duration: int | None = None,
        failure_message: str | None = None,
        invoked_by_type: str = "Manual",
    ) -> Run:
        """A new run starting ``now``; it joins ``group_of``'s recovery group when given.

        ``queued``/``duration`` (ticks) override the store's timing for this run;
        ``failure_message`` is the run's message should it fail.
        """
        t = self._timing
        queued = t.queued if queued is None else queued
        duration = t.duration if duration is None else duration
        run_id = str(uuid.uuid4())
        progress_at = now + queued
        end_at = progress_at + duration
        run = Run(
            seq=self._next_seq(),
            run_id=run_id,
            group_id=group_of.group_id if group_of is not None else run_id,
            pipeline_name=pipeline_name,
            parameters=parameters,
            wire_parameters=wire_parameters(parameters),
            invoked_by=uuid.uuid4().hex,
            start_at=now,
            visible_at=now + t.visibility,
            progress_at=progress_at,
            end_at=end_at,
            outcome=FAILED if failed else SUCCEEDED,
            message=(
                (
                    failure_message
                    or f"Operation on target {pipeline_name} failed: "
                    "the emulator failed this run on purpose (--run-failure-rate)."
                )
                if failed
                else ""
            ),
            end_updated_at=end_at,
            queued_ticks=queued,
            duration_ticks=duration,
            invoked_by_type=invoked_by_type,
        )
        self.factory(key).add(run)
        return run

    def add_past(
        self,
        key: FactoryKey,
        *,
        run_id: str,
        group_id: str,
        pipeline_name: str,
        parameters: dict[str, Any],
        status: str,
        run_start: int,
        run_end: int | None,
        last_updated: int | None,
        message: str,
    ) -> Run:
        """A run from a seeded history, frozen in ``status`` (Queued/InProgress stay so)."""
        updated = last_updated if last_updated is not None else run_end
        ended = run_end if run_end is not None else (updated if updated is not None else run_start)
        run = Run(
            seq=self._next_seq(),
            run_id=run_id,
            group_id=group_id,
            pipeline_name=pipeline_name,
            parameters=parameters,
            wire_parameters=wire_parameters(parameters),
            invoked_by=uuid.uuid5(uuid.NAMESPACE_URL, run_id).hex,
            start_at=run_start,
            visible_at=-NEVER,
            progress_at=NEVER if status == QUEUED else run_start,
            end_at=ended if status in (SUCCEEDED, FAILED) else NEVER,
            outcome=status if status in (SUCCEEDED, FAILED) else SUCCEEDED,
            message=message,
            end_updated_at=updated if updated is not None else ended,
        )
        if status == CANCELING:
            run.cancel_at = updated if updated is not None else run_start
        elif status == CANCELLED:
            run.cancel_at = run.cancelled_at = ended
        self.factory(key).add(run)
        return run

    def find(self, key: FactoryKey, run_id: str, now: int) -> Run | None:
        runs = self._factories.get(key)
        run = runs.by_id.get(run_id.lower()) if runs is not None else None
        if run is None or run.visible_at > now:
            return None
        return run

    def cancel(self, run: Run, now: int) -> str:
        """Request a cancel; returns the status the run had (a finished run is left alone)."""
        status, _, _ = run.state(now)
        if status in (QUEUED, IN_PROGRESS):
            run.cancel_at = now
            run.cancelled_at = now + self._timing.cancel
        return status
