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
import uuid
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from tenacity import RetryCallState

from batchrun.client import CreateRunResponse
from batchrun.errors import ApiError
from batchrun.log import get_logger
from batchrun.progress import Progress
from batchrun.report import ReportWriter, RunResult
from batchrun.retry import RetrySettings, retrying
from batchrun.spec import RunSpec
from batchrun.throttle import Pacers

_log = get_logger("batchrun.scheduler")


class Trigger(Protocol):
    async def create_run(self, spec: RunSpec, *, client_request_id: str) -> CreateRunResponse: ...


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    concurrency: int = 16
    retry: RetrySettings = field(default_factory=RetrySettings)


class _Stopped(Exception):
    """A run that must not start another attempt: the batch is stopping."""


class Scheduler:
    def __init__(
        self,
        *,
        trigger: Trigger,
        writer: ReportWriter,
        settings: SchedulerSettings,
        progress: Progress,
        pacers: Pacers | None = None,
    ) -> None:
        self._trigger = trigger
        self._writer = writer
        self._settings = settings
        self._progress = progress
        self._pacers = pacers or Pacers()
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._stopping = asyncio.Event()
        self.auth_failed: ApiError | None = None

    def stop(self) -> None:
        """Stop dispatching and starting attempts; what is on the wire finishes."""
        self._stopping.set()

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
        tasks = asyncio.Semaphore(self._settings.concurrency)
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
        started = datetime.now(UTC)
        client_request_id = str(uuid.uuid4())
        pacer = self._pacers[spec.subscription]
        attempts = 0
        policy = retrying(
            self._settings.retry, sleep=self._sleep_unless_stopped, before_sleep=self._before_retry
        )
        try:
            async for attempt in policy:
                with attempt:
                    if self._stopping.is_set():
                        raise _Stopped
                    await pacer.acquire()
                    if self._stopping.is_set():
                        pacer.abandoned()
                        raise _Stopped
                    attempts += 1
                    response = await self._send(spec, client_request_id)
        except _Stopped:
            return
        except ApiError as exc:
            if exc.status == 401 and self.auth_failed is None:
                self.auth_failed = exc
                self.stop()
            self._finish(
                RunResult(
                    spec=spec,
                    status="failed",
                    started_at=started,
                    finished_at=datetime.now(UTC),
                    attempts=attempts,
                    http_status=exc.status,
                    error=exc.as_report(),
                    request_id=exc.request_id,
                    correlation_id=exc.correlation_id,
                )
            )
            return
        self._finish(
            RunResult(
                spec=spec,
                status="succeeded",
                started_at=started,
                finished_at=datetime.now(UTC),
                attempts=attempts,
                run_id=response.run_id,
                http_status=response.http_status,
                request_id=response.request_id,
                correlation_id=response.correlation_id,
            )
        )

    async def _send(self, spec: RunSpec, client_request_id: str) -> CreateRunResponse:
        pacer = self._pacers[spec.subscription]
        progress = self._progress
        async with self._slots:
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
            if result.error:
                progress.error_codes[str(result.error.get("code"))] += 1
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
