"""One subscription's lane: its runs in manifest order, those a full pipeline holds back, and the
tasks under way.

A lane hands a run a task only when there is room (``max_tasks``, so tasks never pile up ahead
of the request slots) and when its pipeline's gate lets it go (:mod:`batchrun.run.queues`): a
run whose pipeline's queue is full waits here as a plain object, holding no task, so the other
pipelines of the subscription take the room. A task that ADF's queue refuses comes back and
waits again; its pipeline's runs keep their manifest order.

An open lane (``open_feed=True``) takes more runs while it drives (:meth:`Lane.add`: a dependent
whose needs have succeeded) and waits for them until :meth:`Lane.close`.

Every task is watched to its end: one that raises (a bug, never an expected failure) is handed
to ``on_crash``, which stops the batch loudly; a cancelled lane cancels its tasks and waits for
them, so none is left running unseen.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from batchrun.run.pending import PendingRun
from batchrun.run.queues import GateKey, PipelineGates, gate_key
from batchrun.waits import first_of

if TYPE_CHECKING:
    from batchrun.model import RunSpec

Execute = Callable[[PendingRun], Coroutine[Any, Any, PendingRun | None]]
"""Takes a run to its end; returns it when its pipeline's queue was full (to wait again)."""


class Lane:
    def __init__(
        self,
        specs: deque[RunSpec],
        *,
        gates: PipelineGates,
        max_tasks: int,
        begin: Callable[[RunSpec], PendingRun],
        on_crash: Callable[[BaseException], None],
        open_feed: bool = False,
    ) -> None:
        self._specs = specs
        self._open = open_feed
        self._gates = gates
        self._room = asyncio.Semaphore(max_tasks)
        self._begin = begin
        self._on_crash = on_crash
        self._held: dict[GateKey, deque[PendingRun]] = {}
        # each task's run: a run may give its room back while it waits (see PendingRun.room)
        self._running: dict[asyncio.Task[PendingRun | None], PendingRun] = {}
        self._changed = asyncio.Event()

    async def drive(self, execute: Execute, stopping: asyncio.Event) -> None:
        """Hand out runs until none is left (or the batch stops), then wait for the tasks."""
        try:
            while not stopping.is_set():
                await self._room.acquire()
                run = await self._next(stopping)
                if run is None:
                    self._room.release()
                    break
                run.room, run.holds_room = self._room, True
                task = asyncio.create_task(execute(run))
                self._running[task] = run
                task.add_done_callback(self._ended)
            while self._running:
                await asyncio.wait(set(self._running))
        except asyncio.CancelledError:
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
            raise

    def add(self, spec: RunSpec) -> None:
        """One more run, behind those listed (an open lane only)."""
        assert self._open, "a closed lane takes no more runs"
        self._specs.append(spec)
        self._changed.set()

    def close(self) -> None:
        """No more runs will be added: the lane ends once those it has have ended."""
        self._open = False
        self._changed.set()

    def unhanded(self) -> int:
        """Runs not yet handed a task: listed, or held back by a full pipeline."""
        return len(self._specs) + sum(len(waiting) for waiting in self._held.values())

    def _ended(self, task: asyncio.Task[PendingRun | None]) -> None:
        self._running.pop(task).leave_room()
        self._changed.set()
        if task.cancelled():
            return
        error = task.exception()  # retrieved here, always: never "exception was never retrieved"
        if error is not None:
            self._on_crash(error)
            return
        returned = task.result()
        if returned is not None:
            self._hold(returned)

    async def _next(self, stopping: asyncio.Event) -> PendingRun | None:
        """The next run that may have a task; None when every run has been handed out and
        ended (or the batch stops)."""
        while not stopping.is_set():
            run = self._next_held() or self._next_listed()
            if run is not None:
                self._gates.let_through(run.spec, id(run))
                return run
            if not self._held and not self._running and not self._open:
                return None
            self._changed.clear()
            await first_of(self._changed.wait(), stopping.wait(), within_s=self._reopens_in())
        return None

    def _next_held(self) -> PendingRun | None:
        for key, waiting in list(self._held.items()):
            if not self._gates.holds(waiting[0].spec):
                run = waiting.popleft()
                if not waiting:
                    del self._held[key]
                return run
        return None

    def _next_listed(self) -> PendingRun | None:
        while self._specs:
            run = self._begin(self._specs.popleft())
            if self._gates.holds(run.spec) or gate_key(run.spec) in self._held:
                self._hold(run)  # behind its pipeline's earlier runs
                continue
            return run
        return None

    def _hold(self, run: PendingRun) -> None:
        self._held.setdefault(gate_key(run.spec), deque()).append(run)

    def _reopens_in(self) -> float | None:
        waits = [
            wait
            for waiting in self._held.values()
            if (wait := self._gates.reopens_in(waiting[0].spec)) is not None
        ]
        return min(waits) if waits else None
