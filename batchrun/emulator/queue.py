"""ADF's own queue: a pipeline with a ``concurrency`` value runs at most that many at once.

Runs past the limit wait Queued, first in first out, and start as earlier ones end or are
cancelled. Every run's phases are times fixed in advance (see :mod:`store`), so the queue does
not tick: it re-plans the start of the runs still waiting whenever a run joins or a cancel
frees a slot, and a status read at any instant follows from those times.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from batchrun.emulator.store import NEVER, QUEUED, FactoryKey, Run

__all__ = ["PipelineQueue", "Queues"]


def _release(run: Run) -> int:
    """When ``run`` gives its slot back: at its end, or once a cancel has landed."""
    return run.cancelled_at if run.cancel_at != NEVER else run.end_at


def _cancelled_while_waiting(run: Run) -> bool:
    return run.cancel_at != NEVER and run.cancel_at < run.progress_at


@dataclass(slots=True)
class PipelineQueue:
    concurrency: int
    queued_ticks: int  # the Queued phase every run has before it may start
    duration_ticks: int
    runs: list[Run] = field(default_factory=list)  # not yet finished, in creation order

    def _prune(self, now: int) -> None:
        self.runs = [
            run for run in self.runs if not _cancelled_while_waiting(run) and _release(run) > now
        ]

    def queued(self, now: int) -> int:
        """How many of the pipeline's runs are Queued at ``now``."""
        self._prune(now)
        return sum(1 for run in self.runs if run.state(now)[0] == QUEUED)

    def admit(self, run: Run, now: int) -> None:
        self.runs.append(run)
        self.plan(now, fresh=run)

    def plan(self, now: int, *, fresh: Run | None = None) -> None:
        """Give each waiting run, in order, the earliest slot free after its Queued phase.

        ``fresh`` has just been created: with no Queued phase it would look started already.
        """
        self._prune(now)
        started = [run for run in self.runs if run.progress_at <= now and run is not fresh]
        slots = [_release(run) for run in started]
        slots += [now] * (self.concurrency - len(slots))
        heapq.heapify(slots)
        for run in self.runs:
            if run.progress_at <= now and run is not fresh:
                continue
            free = heapq.heappop(slots)
            # a run created by the store knows its own phases; one built elsewhere uses the queue's
            queued = run.queued_ticks or self.queued_ticks
            duration = run.duration_ticks or self.duration_ticks
            run.progress_at = max(run.start_at + queued, free)
            run.end_at = run.end_updated_at = run.progress_at + duration
            heapq.heappush(slots, run.end_at)


class Queues:
    """The queue of every pipeline that has a concurrency value, by factory and pipeline."""

    def __init__(self, *, queued_ticks: int, duration_ticks: int) -> None:
        self._queued = queued_ticks
        self._duration = duration_ticks
        self._queues: dict[tuple[FactoryKey, str], PipelineQueue] = {}

    def of(self, key: FactoryKey, pipeline: str, concurrency: int) -> PipelineQueue:
        found = self._queues.get((key, pipeline.casefold()))
        if found is None:
            found = PipelineQueue(concurrency, self._queued, self._duration)
            self._queues[(key, pipeline.casefold())] = found
        return found

    def existing(self, key: FactoryKey, pipeline: str) -> PipelineQueue | None:
        return self._queues.get((key, pipeline.casefold()))
