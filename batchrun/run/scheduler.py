"""The scheduler: a batch's createRun calls, bounded, paced and retried; a line for each run."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from tenacity import RetryCallState

from batchrun.arm.client import CreateRunResponse, RunReader
from batchrun.arm.pacing import PacerClosed, Pacers, SubscriptionPacer
from batchrun.arm.retry import RetrySettings, retrying
from batchrun.errors import ApiError
from batchrun.log import get_logger
from batchrun.model import RunSpec
from batchrun.report.writer import ReportWriter, RunResult
from batchrun.run.constants import TASKS_PER_SLOT
from batchrun.run.guard import newer_run_in_group
from batchrun.run.identical import IdenticalRuns
from batchrun.run.journal import Journal
from batchrun.run.pending import PendingRun
from batchrun.run.progress import Progress
from batchrun.run.reconcile import Reconciler, ReconcileSettings
from batchrun.run.slots import FairSlots

_log = get_logger("batchrun.run.scheduler")


class Trigger(Protocol):
    async def create_run(self, spec: RunSpec, *, client_request_id: str) -> CreateRunResponse: ...


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """How hard a batch pushes, and how it rides out failures (built by the CLI's ``run``)."""

    concurrency: int = 16
    """createRun requests in flight at most, all subscriptions together (``--concurrency``,
    default 16). ARM refills a subscription's writes at 10 a second: at createRun's usual latency
    16 requests keep up with that with room to spare, while more would only queue at a throttled
    subscription (the pacer, not this number, sets the write rate)."""
    retry: RetrySettings = field(default_factory=RetrySettings)
    """How each run's createRun is retried, and each read that reconciliation makes."""
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    """How long, and how often, ADF is asked for a run whose createRun answer was lost."""


class _Stopped(Exception):
    """A run that must not start another attempt: the batch is stopping."""


class Scheduler:
    """Triggers a batch of runs, and writes one report line for each run that ends.

    It owns, for one batch: a dispatcher per subscription, fed in manifest order from its own
    queue (a throttled subscription never holds up another); the request slots all subscriptions
    share (:class:`~batchrun.run.slots.FairSlots`, handed out in turn); a write pacer per
    subscription (:mod:`batchrun.arm.pacing`) and read pacers for reconciliation; the
    :class:`~batchrun.run.reconcile.Reconciler`; and the stop event.

    The flow of a run: wait, while identical entries go (:mod:`batchrun.run.identical`); then
    attempts, as the retry policy allows, each one in this order: stop if the batch is stopping;
    if an earlier attempt may have created the run, ask ADF for it (found: succeeded); on the
    first attempt, skip a recovery whose group was rerun since (the recovery guard); wait for the
    subscription's pacer; write the intent (once); send on a request slot. When the retries run
    out, an ambiguous last attempt is looked for once more before the run is failed; a 401 stops
    the batch (the token is bad for every run).

    Invariants:

    - at most ``concurrency`` requests are in flight; a run holds a slot only while its request
      is on the wire, never while it waits between attempts;
    - at most ``concurrency * TASKS_PER_SLOT`` runs per subscription are under way: a dispatcher
      waits for room *before* it creates a run's task;
    - a run's intent is in the journal before its first request leaves;
    - a run that ends gets exactly one line; a run stopped by ``stop()`` or a 401 before it ended
      gets none, so ``--resume`` picks it up. Requests already on the wire finish and are written.
    """

    def __init__(
        self,
        *,
        trigger: Trigger,
        writer: ReportWriter,
        settings: SchedulerSettings,
        progress: Progress,
        reader: RunReader,
        journal: Journal | None = None,
        intents: Mapping[str, datetime] | None = None,
        claimed: Iterable[str] = (),
        pacers: Pacers | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._trigger = trigger
        self._writer = writer
        self._settings = settings
        self._progress = progress
        self._reader = reader
        self._read_pacers = Pacers()
        self._reconciler = Reconciler(
            reader=reader,
            pacers=self._read_pacers,
            settings=settings.reconcile,
            retry=settings.retry,
            clock=clock,
            sleep=self._sleep_or_raise_stopped,
        )
        for run_id in claimed:
            self._reconciler.claim(run_id)
        self._journal = journal
        self._intents = intents or {}
        self._write_pacers = pacers or Pacers()
        self._clock = clock
        self._slots = FairSlots(settings.concurrency)
        self._stopping = asyncio.Event()
        self._identical = IdenticalRuns()
        self.auth_failed: ApiError | None = None

    def stop(self) -> None:
        """Stop dispatching and starting attempts; what is on the wire finishes."""
        self._stopping.set()
        self._write_pacers.close()
        self._read_pacers.close()

    async def run(self, specs: Iterable[RunSpec]) -> None:
        queues: dict[str, deque[RunSpec]] = defaultdict(deque)
        for spec in specs:
            queues[spec.subscription].append(spec)
        async with asyncio.TaskGroup() as group:
            for queue in queues.values():
                group.create_task(self._dispatch(queue))

    async def _dispatch(self, queue: deque[RunSpec]) -> None:
        tasks = asyncio.Semaphore(self._settings.concurrency * TASKS_PER_SLOT)
        running: set[asyncio.Task[None]] = set()
        while queue and not self._stopping.is_set():
            await tasks.acquire()
            if self._stopping.is_set():
                tasks.release()
                break
            task = asyncio.create_task(self._execute(queue.popleft()))
            running.add(task)
            task.add_done_callback(running.discard)
            task.add_done_callback(lambda _: tasks.release())
        if running:
            await asyncio.gather(*running)

    async def _execute(self, spec: RunSpec) -> None:
        async with self._identical.one_at_a_time(spec):
            run = PendingRun.begin(spec, first_intent_at=self._intents.get(spec.id))
            result = await self._trigger_run(run)
        if result is not None:
            self._finish(result)

    async def _trigger_run(self, run: PendingRun) -> RunResult | None:
        """Attempts until one ends the run, or the retries run out; None when the batch stops
        first (the run gets no line)."""
        # made now, not at its first send, so that a stop() meanwhile closes it
        pacer = self._write_pacers[run.spec.subscription]
        if run.first_intent_at is not None:
            # a crashed process's intent: its attempt may have created the run
            run.reconcile_deadline = self._reconcile_deadline(run.first_intent_at)
        policy = retrying(
            self._settings.retry, sleep=self._sleep_ending_on_stop, before_sleep=self._before_retry
        )
        try:
            async for attempt in policy:
                with attempt:
                    return await self._attempt(run, pacer)
        except (_Stopped, PacerClosed):
            return None
        except ApiError as exc:
            return await self._gave_up(run, exc)
        raise AssertionError("retrying() returns or raises")  # pragma: no cover

    async def _attempt(self, run: PendingRun, pacer: SubscriptionPacer) -> RunResult:
        """One attempt, top to bottom: stopping? → an earlier attempt's run in ADF? → the
        recovery guard (first attempt only) → pace → intent → send. Returns the run's result, or
        raises the ApiError for the retry policy to judge."""
        self._raise_if_stopping()
        found = await self._reconcile_if_ambiguous(run)
        if found is not None:
            return run.succeeded(found, reconciled=True)
        if run.attempts == 0:
            # a recovery entry whose group was rerun since must not be rerun again
            newer = await newer_run_in_group(self._reader, run.spec)
            if newer is not None:
                return run.skipped(f"a newer run {newer} exists in the group")
        await pacer.acquire()
        self._write_intent_once(run)
        run.attempts += 1
        try:
            response = await self._send(run, pacer)
        except ApiError as exc:
            if exc.sent and exc.transient:
                # the answer was lost, maybe not the request: look before posting again
                run.reconcile_deadline = self._clock() + self._settings.reconcile.window_s
            raise
        self._reconciler.created(run.spec, response.run_id)
        return run.succeeded(response.run_id, response=response)

    async def _gave_up(self, run: PendingRun, error: ApiError) -> RunResult | None:
        """The retry policy gave up on ``error``: the run's line, or None when stopping."""
        if error.status == 401 and self.auth_failed is None:
            # the token is bad for every run: stop sending
            self.auth_failed = error
            self.stop()
        try:
            # the last attempt may have been ambiguous: look once more before saying failed
            found = await self._reconcile_if_ambiguous(run)
        except (_Stopped, PacerClosed):
            return None
        except ApiError as reconcile_error:
            return run.failed(reconcile_error)
        if found is not None:
            return run.succeeded(found, reconciled=True)
        return run.failed(error)

    def _write_intent_once(self, run: PendingRun) -> None:
        if run.first_intent_at is None:
            run.first_intent_at = datetime.now(UTC)
            if self._journal is not None:
                self._journal.intent(
                    spec_id=run.spec.id,
                    client_request_id=run.client_request_id,
                    at=run.first_intent_at,
                )

    def _reconcile_deadline(self, since: datetime) -> float:
        """The monotonic time until which a run created at ``since`` may still be invisible."""
        age = (datetime.now(UTC) - since).total_seconds()
        return self._clock() + max(0.0, self._settings.reconcile.window_s - age)

    async def _reconcile_if_ambiguous(self, run: PendingRun) -> str | None:
        """When an earlier attempt may have created the run: its runId, if ADF has it."""
        if run.reconcile_deadline is None or run.first_intent_at is None:
            return None
        deadline, run.reconcile_deadline = run.reconcile_deadline, None
        try:
            found = await self._reconciler.find(
                run.spec, created_since=run.first_intent_at, deadline=deadline
            )
        finally:
            self._progress.reads = self._reconciler.read_count
            self._progress.window = self._reconciler.window.describe()
        if found is not None:
            self._progress.reconciled += 1
        return found

    async def _send(self, run: PendingRun, pacer: SubscriptionPacer) -> CreateRunResponse:
        """createRun on a request slot; the subscription's pacer hears how it went."""
        spec, progress = run.spec, self._progress
        async with self._slots.hold(spec.subscription):
            progress.in_flight += 1
            try:
                response = await self._trigger.create_run(
                    spec, client_request_id=run.client_request_id
                )
            except ApiError as exc:
                self._tell_pacer_failed(pacer, exc)
                raise
            finally:
                progress.in_flight -= 1
        pacer.completed(response.limits.remaining_writes)
        return response

    def _tell_pacer_failed(self, pacer: SubscriptionPacer, error: ApiError) -> None:
        if error.status == 429:
            self._progress.throttled += 1
            pacer.throttled_for(error.retry_after)
        elif error.status is None:
            pacer.abandoned()
        else:
            pacer.completed(error.remaining_writes)

    def _raise_if_stopping(self) -> None:
        if self._stopping.is_set():
            raise _Stopped

    async def _sleep_or_raise_stopped(self, seconds: float) -> None:
        """Sleep, but raise ``_Stopped`` should the batch stop meanwhile."""
        await self._sleep_ending_on_stop(seconds)
        self._raise_if_stopping()

    async def _sleep_ending_on_stop(self, seconds: float) -> None:
        """Sleep, but no longer than until the batch stops; never raises."""
        # a run waiting out a long Retry-After must not hold up a graceful stop
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return

    async def _before_retry(self, state: RetryCallState) -> None:
        self._progress.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ApiError):
            _log.debug(
                "run.retry",
                attempt=state.attempt_number,
                status=exc.status,
                code=exc.code,
                wait_s=round(state.upcoming_sleep, 3),
            )

    def _finish(self, result: RunResult) -> None:
        self._writer.write(result)
        self._progress.count_finished(result.status)
        _log.info(
            "run.finished",
            id=result.spec.id,
            factory=result.spec.factory,
            pipeline=result.spec.pipeline,
            status=result.status,
            run_id=result.run_id,
            attempts=result.attempts,
            http_status=result.http_status,
            duration_ms=result.duration_ms,
            error_code=result.error.get("code") if result.error else None,
            error_message=result.error.get("message") if result.error else None,
        )
