"""Bounded fan-out of createRun calls, one result line per run, graceful drain.

Each subscription gets its own dispatcher, fed from its own queue in manifest order, so a
throttled subscription never holds up another (no head-of-line blocking however the manifest is
sorted). A dispatcher waits for a task slot *before* creating a run's task, so at most
``concurrency`` tasks per subscription exist; the requests themselves share one global limit of
``concurrency`` in flight. A run's task holds that global slot only while a request is on the wire,
never while it sleeps between attempts.

Stopping: ``halt()`` (a 401: the token is bad for every run) and ``stop()`` (SIGTERM/SIGINT) both
stop dispatching and stop new attempts; a run stopped that way gets no line, so ``--resume`` picks
it up. Requests already on the wire finish and are written.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from tenacity import RetryCallState

from batchrun.arm.client import CreateRunResponse, RunReader
from batchrun.arm.pacing import PacerClosed, Pacers
from batchrun.arm.retry import RetrySettings, retrying
from batchrun.errors import ApiError
from batchrun.log import get_logger
from batchrun.model import RunSpec
from batchrun.report.writer import ReportWriter, RunResult
from batchrun.run.guard import newer_run_in_group
from batchrun.run.journal import Journal
from batchrun.run.progress import Progress
from batchrun.run.reconcile import Reconciler, ReconcileSettings
from batchrun.run.slots import FairSlots

_log = get_logger("batchrun.run.scheduler")
_TASKS_PER_SLOT = 4


class Trigger(Protocol):
    async def create_run(self, spec: RunSpec, *, client_request_id: str) -> CreateRunResponse: ...


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    concurrency: int = 16
    retry: RetrySettings = field(default_factory=RetrySettings)
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)


class _Stopped(Exception):
    """A run that must not start another attempt: the batch is stopping."""


@dataclass(slots=True)
class _Run:
    """One run's progress through its attempts."""

    spec: RunSpec
    started: datetime
    request_id: str
    # wall-clock time of the first intent (this process's or a crashed one's)
    since: datetime | None
    # while set, an attempt may have created the run: ask ADF (until this monotonic time) first
    look_until: float | None = None
    attempts: int = 0

    @classmethod
    def start(cls, spec: RunSpec, since: datetime | None) -> _Run:
        return cls(spec=spec, started=datetime.now(UTC), request_id=str(uuid.uuid4()), since=since)

    def succeeded(
        self, run_id: str, *, response: CreateRunResponse | None = None, reconciled: bool = False
    ) -> RunResult:
        return RunResult(
            spec=self.spec,
            status="succeeded",
            started_at=self.started,
            finished_at=datetime.now(UTC),
            attempts=self.attempts,
            run_id=run_id,
            http_status=response.http_status if response else None,
            request_id=response.request_id if response else None,
            correlation_id=response.correlation_id if response else None,
            reconciled=reconciled,
        )

    def skipped(self, reason: str) -> RunResult:
        return RunResult(
            spec=self.spec,
            status="skipped",
            started_at=self.started,
            finished_at=datetime.now(UTC),
            attempts=self.attempts,
            reason=reason,
        )

    def failed(self, error: ApiError) -> RunResult:
        return RunResult(
            spec=self.spec,
            status="failed",
            started_at=self.started,
            finished_at=datetime.now(UTC),
            attempts=self.attempts,
            http_status=error.status,
            error=error.as_report(),
            request_id=error.request_id,
            correlation_id=error.correlation_id,
        )


class _IdenticalRuns:
    """One lock per distinct createRun request, held while a run with that request is going."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @staticmethod
    def key(spec: RunSpec) -> str:
        # ARM names are case-insensitive: "LoadOrders" and "loadorders" are one request
        names = (spec.subscription, spec.resource_group, spec.factory, spec.pipeline)
        return json.dumps(
            [*(name.casefold() for name in names), spec.parameters, spec.recovery_query()],
            sort_keys=True, default=str,
        )  # fmt: skip

    @asynccontextmanager
    async def hold(self, spec: RunSpec) -> AsyncIterator[None]:
        key = self.key(spec)
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Scheduler:
    def __init__(
        self,
        *,
        trigger: Trigger,
        writer: ReportWriter,
        settings: SchedulerSettings,
        progress: Progress,
        queries: RunReader,
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
        self._queries = queries
        self._read_pacers = Pacers()
        self._reconciler = Reconciler(
            queries=queries,
            pacers=self._read_pacers,
            settings=settings.reconcile,
            retry=settings.retry,
            clock=clock,
            sleep=self.sleep_or_stop,
        )
        for run_id in claimed:
            self._reconciler.claim(run_id)
        self._journal = journal
        self._intents = intents or {}
        self._pacers = pacers or Pacers()
        self._clock = clock
        self._slots = FairSlots(settings.concurrency)
        self._stopping = asyncio.Event()
        self._identical = _IdenticalRuns()
        self.auth_failed: ApiError | None = None

    def stop(self) -> None:
        """Stop dispatching and starting attempts; what is on the wire finishes."""
        self._stopping.set()
        self._pacers.close()
        self._read_pacers.close()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self, specs: Iterable[RunSpec]) -> None:
        queues: dict[str, deque[RunSpec]] = defaultdict(deque)
        for spec in specs:
            queues[spec.subscription].append(spec)
        async with asyncio.TaskGroup() as group:
            for queue in queues.values():
                group.create_task(self._dispatch(queue))

    async def _dispatch(self, queue: deque[RunSpec]) -> None:
        # runs waiting out a backoff or a reconciliation hold a task but no request slot, so
        # allow more tasks than requests; still bounded, however long the manifest
        tasks = asyncio.Semaphore(self._settings.concurrency * _TASKS_PER_SLOT)
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
        # identical entries go one after another, so a lost response's run is never mistaken
        # for the run of a twin whose answer is still on its way
        async with self._identical.hold(spec):
            result = await self._trigger_run(_Run.start(spec, self._intents.get(spec.id)))
        if result is not None:
            self._finish(result)

    def _look_until(self, since: datetime) -> float:
        """The monotonic time until which a run created at ``since`` may still be invisible."""
        age = (datetime.now(UTC) - since).total_seconds()
        return self._clock() + max(0.0, self._settings.reconcile.window_s - age)

    async def _trigger_run(self, run: _Run) -> RunResult | None:
        spec = run.spec
        pacer = self._pacers[spec.subscription]
        if run.since is not None:
            run.look_until = self._look_until(run.since)
        policy = retrying(
            self._settings.retry, sleep=self._sleep_unless_stopped, before_sleep=self._before_retry
        )
        try:
            async for attempt in policy:
                with attempt:
                    self._check_stopping()
                    found = await self._reconcile(run)
                    if found is not None:
                        return run.succeeded(found, reconciled=True)
                    if run.attempts == 0:
                        # a recovery entry whose group was rerun since must not be rerun again
                        newer = await newer_run_in_group(self._queries, spec)
                        if newer is not None:
                            return run.skipped(f"a newer run {newer} exists in the group")
                    await pacer.acquire()
                    if run.since is None:
                        run.since = datetime.now(UTC)
                        if self._journal is not None:
                            self._journal.intent(spec.id, run.request_id, run.since)
                    run.attempts += 1
                    try:
                        response = await self._send(spec, run.request_id)
                    except ApiError as exc:
                        if exc.sent and exc.transient:
                            run.look_until = self._clock() + self._settings.reconcile.window_s
                        raise
                    self._reconciler.claim(response.run_id)
                    return run.succeeded(response.run_id, response=response)
        except (_Stopped, PacerClosed):
            return None
        except ApiError as exc:
            error = exc
            if exc.status == 401 and self.auth_failed is None:
                self.auth_failed = exc
                self.stop()
            try:
                # retries ran out after an ambiguous attempt: look once more before saying failed
                found = await self._reconcile(run)
            except (_Stopped, PacerClosed):
                return None
            except ApiError as reconcile_error:
                found, error = None, reconcile_error
            if found is not None:
                return run.succeeded(found, reconciled=True)
            return run.failed(error)
        raise AssertionError("retrying() returns or raises")  # pragma: no cover

    async def _reconcile(self, run: _Run) -> str | None:
        """When an earlier attempt may have created the run: its runId, if ADF has it."""
        if run.look_until is None or run.since is None:
            return None
        look_until, run.look_until = run.look_until, None
        try:
            found = await self._reconciler.find(run.spec, since=run.since, look_until=look_until)
        finally:
            self._progress.reads = self._reconciler.queries
        if found is not None:
            self._progress.reconciled += 1
        return found

    def _check_stopping(self) -> None:
        if self._stopping.is_set():
            raise _Stopped

    async def _send(self, spec: RunSpec, client_request_id: str) -> CreateRunResponse:
        pacer = self._pacers[spec.subscription]
        progress = self._progress
        async with self._slots.hold(spec.subscription):
            progress.in_flight += 1
            try:
                response = await self._trigger.create_run(spec, client_request_id=client_request_id)
            except ApiError as exc:
                if exc.status == 429:
                    progress.throttled += 1
                    pacer.throttled_for(exc.retry_after)
                elif exc.status is None:
                    pacer.abandoned()
                else:
                    pacer.completed(exc.remaining_writes)
                raise
            finally:
                progress.in_flight -= 1
        pacer.completed(response.limits.remaining_writes)
        return response

    async def sleep_or_stop(self, seconds: float) -> None:
        """Sleep, but raise ``_Stopped`` should the batch be stopped meanwhile."""
        await self._sleep_unless_stopped(seconds)
        self._check_stopping()

    async def _sleep_unless_stopped(self, seconds: float) -> None:
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
        progress = self._progress
        progress.done += 1
        if result.status == "succeeded":
            progress.succeeded += 1
        elif result.status == "failed":
            progress.failed += 1
        else:
            progress.skipped += 1
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
