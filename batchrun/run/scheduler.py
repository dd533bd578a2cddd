"""The scheduler: a batch's createRun calls, bounded, paced and retried; a line for each run."""

from __future__ import annotations

import asyncio
import enum
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from batchrun.arm.answers import is_queue_refusal
from batchrun.arm.pacing import PacerClosed, Pacers, SubscriptionPacer
from batchrun.arm.retry import RetrySettings, attempt_until_done
from batchrun.errors import ApiError, AuthError
from batchrun.log import get_logger
from batchrun.report.writer import ReportWriter, RunResult
from batchrun.run.constants import TASKS_PER_SLOT
from batchrun.run.guard import newest_in_group
from batchrun.run.identical import IdenticalRuns
from batchrun.run.lanes import Lane
from batchrun.run.pending import PendingRun
from batchrun.run.queues import PipelineGates
from batchrun.run.reconcile import MARGIN, Reconciler, ReconcileSettings
from batchrun.run.sender import Sender, Trigger
from batchrun.run.slots import FairSlots
from batchrun.run.stops import Stops
from batchrun.waits import first_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from tenacity import RetryCallState

    from batchrun.arm.client import RunReader
    from batchrun.model import RunSpec
    from batchrun.run.journal import Journal
    from batchrun.run.progress import Progress

__all__ = ["Scheduler", "SchedulerSettings", "Trigger"]

_log = get_logger("batchrun.run.scheduler")


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


class _Hold(enum.Enum):
    """A run to give back to its lane: its pipeline's queue at ADF is full."""

    QUEUE_FULL = "queue full"


Outcome = RunResult | _Hold


class _HeldBack:
    """Asks whether a run is held back (for the pacer and the sender), and keeps why."""

    def __init__(self, check: Callable[[], Outcome | None]) -> None:
        self._check = check
        self._reason: Outcome | None = None

    def __call__(self) -> bool:
        self._reason = self._check()
        return self._reason is not None

    def outcome(self) -> Outcome:
        assert self._reason is not None, "asked only once held back"
        return self._reason


class Scheduler:
    """Triggers a batch of runs, and writes one report line for each run that ends.

    It owns, for one batch: a :class:`~batchrun.run.lanes.Lane` per subscription, fed in
    manifest order (a throttled subscription never holds up another, a full pipeline never
    holds up the other pipelines: :mod:`batchrun.run.queues`); the request slots all
    subscriptions share (:class:`~batchrun.run.slots.FairSlots`, handed out in turn); a write
    pacer per subscription (:mod:`batchrun.arm.pacing`) and read pacers for reconciliation; the
    :class:`~batchrun.run.reconcile.Reconciler`; the stops (:mod:`batchrun.run.stops`).

    The flow of a run: wait, while identical entries go (:mod:`batchrun.run.identical`); then
    attempts, as the retry policy allows, each one in this order: is it held back (the batch
    stopping, its subscription refused, its pipeline's queue full)? if an earlier attempt may
    have created the run, ask ADF for it (found: succeeded); for a recovery entry, the recovery
    guard, before every post: a newer run in the group is ours when an earlier attempt may have
    made it, else the entry is skipped; wait for the subscription's pacer; wait for a request
    slot; held back now? (nothing leaves after a stop); write the intent (once); send. When the
    retries run out, an ambiguous last attempt is looked for once more before the run is
    failed.

    Invariants:

    - at most ``concurrency`` requests are in flight; a run holds a slot only while its request
      is on the wire, never while it waits between attempts;
    - at most ``concurrency * TASKS_PER_SLOT`` runs per subscription are under way, not counting
      runs waiting for reconciliation (they send nothing, share one read per poll, and give their
      room back until they must post again): a lane waits for room *before* it creates a run's
      task, and a run waiting for a full pipeline queue holds no task;
    - a run's intent is in the journal just before its first request leaves, never earlier (an
      intent makes ``--resume`` look for the run in ADF);
    - after ``stop()`` no request leaves: only those already on the wire finish, and are written;
    - every pacer turn taken is given back, however the attempt ends;
    - a run that ends gets exactly one line; a run stopped by ``stop()``, a bad token or an
      unreachable endpoint before it ended gets none, so ``--resume`` picks it up; a task that
      raises anything unexpected stops the batch, and ``run`` raises it.
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
        self._intents = intents or {}
        self._write_pacers = pacers or Pacers()
        self._clock = clock
        self._stopping = asyncio.Event()
        self._identical = IdenticalRuns()
        self._stops = Stops()
        self._gates = PipelineGates(
            clock=clock,
            stall_s=settings.retry.max_seconds,
            open_at=settings.concurrency * TASKS_PER_SLOT,
        )
        self._subscriptions: set[str] = set()
        self._lanes: dict[str, Lane] = {}
        self._group: asyncio.TaskGroup | None = None
        self._feeding = False
        self._feed_closed = asyncio.Event()
        self.on_finish: Callable[[RunResult], None] | None = None
        """Told of every run's line once written (the dependency driver decides on it)."""
        self._crashes: list[BaseException] = []
        self._sender = Sender(
            trigger=trigger,
            slots=FairSlots(settings.concurrency),
            progress=progress,
            journal=journal,
            stops=self._stops,
            gates=self._gates,
            clock=clock,
            reconcile_window_s=settings.reconcile.window_s,
            pause_cap_s=settings.retry.max_seconds,
            stop_batch=self.stop,
        )

    @property
    def auth_failed(self) -> ApiError | None:
        """Why no request could be authenticated: the token was refused (or could not be had)
        and the batch stopped, or every subscription of the batch was refused."""
        return self._stops.token_refused or self._stops.all_refused(self._subscriptions)

    @property
    def stopping(self) -> bool:
        """The batch is stopping (a signal, a refused token, a crash): nothing more leaves."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop dispatching and starting attempts; what is on the wire finishes."""
        self._stopping.set()
        self._write_pacers.close()
        self._read_pacers.close()

    async def run(self, specs: Iterable[RunSpec], *, open_feed: bool = False) -> None:
        """Trigger ``specs``. Raises UnreachableError when the endpoint never answered, and
        the first unexpected error of a run's task (after the batch stopped for it).

        With ``open_feed``, :meth:`add` hands it more runs while it runs (a dependent whose
        needs succeeded: :mod:`batchrun.run.dependencies`), and it ends only after
        :meth:`close` (or a stop) once the runs it has have ended; the pacing, the request
        slots and the stops are the same for every run, however it came.
        """
        queues: dict[str, deque[RunSpec]] = defaultdict(deque)
        for spec in specs:
            queues[spec.subscription].append(spec)
        self._subscriptions = set(queues)
        self._feeding = open_feed and not self._feed_closed.is_set()
        async with asyncio.TaskGroup() as group:
            self._group = group
            for queue in queues.values():
                self._start_lane(queue)
            if self._feeding:
                # holds the group open while no lane does: a feed may bring a new subscription
                group.create_task(first_of(self._feed_closed.wait(), self._stopping.wait()))
        self._group = None
        self._lanes.clear()
        if self._crashes:
            raise self._crashes[0]
        not_sent = self._progress.total - self._progress.done
        unreachable = self._stops.unreachable_error(not_sent=not_sent)
        if unreachable is not None:
            raise unreachable

    def add(self, spec: RunSpec) -> bool:
        """One more run, while :meth:`run` runs with ``open_feed``, behind the runs of its
        subscription; False when it was not taken (closed, stopping): it gets no line."""
        if self._group is None or not self._feeding or self._stopping.is_set():
            return False
        lane = self._lanes.get(spec.subscription)
        if lane is None:
            self._subscriptions.add(spec.subscription)
            self._start_lane(deque([spec]))
        else:
            lane.add(spec)
        return True

    def close(self) -> None:
        """No more runs will be added: :meth:`run` ends once the runs it has have ended."""
        self._feeding = False
        self._feed_closed.set()
        for subscription, lane in self._lanes.items():
            lane.close()
            self._write_pacers[subscription].expect(lane.unhanded)

    def _start_lane(self, queue: deque[RunSpec]) -> None:
        assert self._group is not None
        lane = Lane(
            queue,
            gates=self._gates,
            max_tasks=self._settings.concurrency * TASKS_PER_SLOT,
            begin=self._begin,
            on_crash=self._crashed,
            open_feed=self._feeding,
        )
        self._lanes[queue[0].subscription] = lane
        if not self._feeding:
            # how many runs are left tells the pacer when the last ones may spend its reserve;
            # an open lane does not know until it is closed
            self._write_pacers[queue[0].subscription].expect(lane.unhanded)
        self._group.create_task(lane.drive(self._execute, self._stopping))

    def _crashed(self, error: BaseException) -> None:
        _log.error("run.crashed", error=repr(error), exc_info=error)
        self._crashes.append(error)
        self.stop()

    def _begin(self, spec: RunSpec) -> PendingRun:
        run = PendingRun.begin(spec, first_intent_at=self._intents.get(spec.id))
        if run.first_intent_at is not None:
            # a crashed process's intent: its attempt may have created the run
            run.may_exist = True
            run.reconcile_deadline = self._reconcile_deadline(run.first_intent_at)
        return run

    async def _execute(self, run: PendingRun) -> PendingRun | None:
        """Takes ``run`` to its end and writes its line; returns it to wait for its pipeline's
        queue."""
        try:
            async with self._identical.one_at_a_time(run.spec):
                outcome = await self._trigger_run(run)
        finally:
            self._gates.settled(run.spec, id(run))
        if outcome is _Hold.QUEUE_FULL:
            return run
        if outcome is not None:
            self._finish(outcome)
        return None

    async def _trigger_run(self, run: PendingRun) -> Outcome | None:
        """Attempts until one ends the run, or the retries run out; None when the batch stops
        first (the run gets no line)."""
        # made now, not at its first send, so that a stop() meanwhile closes it
        pacer = self._write_pacers[run.spec.subscription]
        retry = self._settings.retry
        # a run back from a full queue starts a new policy: its earlier failures still count
        left = (
            retry
            if run.failures == 0 and retry.max_attempts >= 1
            else replace(retry, max_attempts=max(1, retry.max_attempts - run.failures))
        )
        try:
            return await attempt_until_done(
                left,
                partial(self._attempt, run, pacer),
                sleep=self._sleep_ending_on_stop,
                before_sleep=self._before_retry,
            )
        except (_Stopped, PacerClosed):
            return None
        except AuthError as exc:
            self._credential_failed(exc)
            return None
        except ApiError as exc:
            return await self._gave_up(run, exc)

    async def _attempt(self, run: PendingRun, pacer: SubscriptionPacer) -> Outcome:
        """One attempt (:meth:`_attempt_once`); a failure the retry policy is to judge is
        counted and raised, a full queue gives the run back to its lane."""
        try:
            return await self._attempt_once(run, pacer)
        except ApiError as exc:
            if is_queue_refusal(exc):
                return self._held_back(run) or _Hold.QUEUE_FULL
            run.failures += 1
            if self._stops.connection_failed(exc):
                self.stop()
                raise _Stopped from exc
            raise

    async def _attempt_once(self, run: PendingRun, pacer: SubscriptionPacer) -> Outcome:
        """Top to bottom: held back? → an earlier attempt's run in ADF? → the recovery guard →
        pace → slot → held back now? → intent → send."""
        if run.first_attempt_at is None:
            run.first_attempt_at = self._clock()
        already = self._held_back(run)
        if already is not None:
            return already
        found = await self._reconcile_if_ambiguous(run)
        if found is not None:
            return run.succeeded(found, reconciled=True)
        if run.spec.is_recovery:
            guarded = await self._guard(run)
            if guarded is not None:
                return guarded
        # held back while waiting for the pacer or a slot (stopped, refused, paused, queue
        # full): nothing is sent, no turn is kept
        held = _HeldBack(partial(self._held_back, run))
        if not await pacer.acquire(unless=held):
            return held.outcome()
        sent = await self._sender.send(run, pacer, unless=held)
        if sent is None:
            return held.outcome()
        self._reconciler.created(run.spec, sent.run_id)
        return run.succeeded(sent.run_id, response=sent)

    def _held_back(self, run: PendingRun) -> Outcome | None:
        """Why ``run`` must not be sent now, if it must not; raises ``_Stopped`` when the batch
        stops. Asked before an attempt and again once it has its slot."""
        if self._stopping.is_set():
            raise _Stopped
        refusal = self._stops.refusal(run.spec.subscription)
        if refusal is not None:
            return run.failed(refusal)
        now = self._clock()
        started = run.first_attempt_at if run.first_attempt_at is not None else now
        left = self._settings.retry.max_seconds - (now - started)
        paused = self._stops.paused_beyond(run.spec.subscription, now=now, left_s=left)
        if paused is not None:
            return run.failed(paused)
        stalled = self._gates.stalled(run.spec)
        if stalled is not None:
            return run.failed(stalled)
        if not self._gates.may_send(run.spec, id(run)):
            return _Hold.QUEUE_FULL
        return None

    async def _guard(self, run: PendingRun) -> RunResult | None:
        """The recovery guard, before every post of a recovery entry: has its group been rerun?

        A newer run that started after our first attempt, when an attempt may have created it,
        is ours (its answer was lost and reconciliation did not see it): succeeded. Any other
        newer run means the group was rerun by someone else: skipped, never rerun twice.
        """
        newer = await newest_in_group(self._reader, run.spec)
        if newer is None:
            return None
        first = run.first_intent_at
        if run.may_exist and first is not None and newer.started_since(first, margin=MARGIN):
            self._reconciler.claim(newer.run_id)
            self._progress.reconciled += 1
            return run.succeeded(newer.run_id, reconciled=True)
        return run.skipped(f"a newer run {newer.run_id} exists in the group")

    async def _gave_up(self, run: PendingRun, error: ApiError) -> RunResult | None:
        """The retry policy gave up on ``error``: the run's line, or None when stopping."""
        if error.status == 401:
            return run.failed(self._stops.refused_answer(run.spec.subscription, error))
        try:
            # the last attempt may have been ambiguous: look once more before saying failed
            found = await self._reconcile_if_ambiguous(run)
        except (_Stopped, PacerClosed):
            return None
        except AuthError as exc:
            self._credential_failed(exc)
            return None
        except ApiError as reconcile_error:
            return run.failed(reconcile_error)
        if found is not None:
            return run.succeeded(found, reconciled=True)
        return run.failed(error)

    def _credential_failed(self, error: AuthError) -> None:
        if self._stops.token_refused is None:
            _log.error("batch.no_token", error=str(error))
        self._stops.credential_failed(error)
        self.stop()

    def _reconcile_deadline(self, since: datetime) -> float:
        """The monotonic time until which a run created at ``since`` may still be invisible."""
        age = (datetime.now(UTC) - since).total_seconds()
        return self._clock() + max(0.0, self._settings.reconcile.window_s - age)

    async def _reconcile_if_ambiguous(self, run: PendingRun) -> str | None:
        """When an earlier attempt may have created the run: its runId, if ADF has it."""
        if run.reconcile_deadline is None or run.first_intent_at is None:
            return None
        deadline, run.reconcile_deadline = run.reconcile_deadline, None
        # waiting sends nothing: the runs behind it in the lane take its room meanwhile
        run.leave_room()
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
        await run.take_room()
        return None

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
        if self.on_finish is not None:
            self.on_finish(result)
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
