"""The last step of an attempt: a request slot, a last look at whether the run is held back, its
intent, the createRun; and what the answer tells the pacer, the stops and the pipeline's gate.

Whatever happens here, the pacer's turn is given back exactly once: ``completed`` or
``throttled_for`` for an answer, ``abandoned`` for a request that got none, ``unused`` when
nothing left (held back once it had its slot, the batch stopping, no token, a cancel).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from batchrun.arm.answers import is_queue_refusal
from batchrun.errors import ApiError

if TYPE_CHECKING:
    from collections.abc import Callable

    from batchrun.arm.client import CreateRunResponse
    from batchrun.arm.pacing import SubscriptionPacer
    from batchrun.model import RunSpec
    from batchrun.run.journal import Journal
    from batchrun.run.pending import PendingRun
    from batchrun.run.progress import Progress
    from batchrun.run.queues import PipelineGates
    from batchrun.run.slots import FairSlots
    from batchrun.run.stops import Stops


class Trigger(Protocol):
    async def create_run(self, spec: RunSpec, *, client_request_id: str) -> CreateRunResponse: ...


class Sender:
    """Sends a run's createRun for the scheduler; the request slots are its own."""

    def __init__(
        self,
        *,
        trigger: Trigger,
        slots: FairSlots,
        progress: Progress,
        journal: Journal | None,
        stops: Stops,
        gates: PipelineGates,
        clock: Callable[[], float],
        reconcile_window_s: float,
        pause_cap_s: float,
        stop_batch: Callable[[], None],
    ) -> None:
        self._trigger = trigger
        self._slots = slots
        self._progress = progress
        self._journal = journal
        self._stops = stops
        self._gates = gates
        self._clock = clock
        self._reconcile_window_s = reconcile_window_s
        self._pause_cap_s = pause_cap_s
        self._stop_batch = stop_batch

    async def send(
        self, run: PendingRun, pacer: SubscriptionPacer, *, unless: Callable[[], bool]
    ) -> CreateRunResponse | None:
        """createRun on a request slot; None, with nothing sent, when ``unless()`` says the run
        is held back once the slot is had. Raises the ApiError of a failed createRun."""
        spec, progress = run.spec, self._progress
        settled = False
        sent_at: float | None = None
        try:
            async with self._slots.hold(spec.subscription):
                # the wait for a slot may have been long: a stop meanwhile sends nothing more
                if unless():
                    return None
                self._write_intent_once(run)
                run.attempts += 1
                sent_at = self._clock()
                left_at = pacer.now()
                progress.in_flight += 1
                try:
                    response = await self._trigger.create_run(
                        spec, client_request_id=run.client_request_id
                    )
                except ApiError as exc:
                    settled = True
                    # still on the slot: a 401 that stops the batch lets nothing else leave
                    self._heard_error(run, pacer, exc, sent_at=sent_at, left_at=left_at)
                    raise
                finally:
                    progress.in_flight -= 1
                settled = True
                pacer.completed(response.limits.remaining_writes, sent_at=left_at)
                self._stops.answered(spec.subscription, sent_at=sent_at)
                self._gates.accepted(spec, id(run))
                return response
        finally:
            if not settled:
                if sent_at is None:
                    pacer.unused()
                else:
                    pacer.abandoned()

    def _write_intent_once(self, run: PendingRun) -> None:
        """The intent, just before the first request leaves (never for a run not sent: an
        intent makes ``--resume`` look for the run in ADF)."""
        if run.first_intent_at is None:
            run.first_intent_at = datetime.now(UTC)
            if self._journal is not None:
                self._journal.intent(
                    spec_id=run.spec.id,
                    client_request_id=run.client_request_id,
                    at=run.first_intent_at,
                )

    def _heard_error(
        self,
        run: PendingRun,
        pacer: SubscriptionPacer,
        error: ApiError,
        *,
        sent_at: float,
        left_at: float,
    ) -> None:
        """What a failed createRun tells the pacer, the stops and the pipeline's gate
        (``left_at``: when it left, on the pacer's clock)."""
        subscription = run.spec.subscription
        if is_queue_refusal(error):
            # ADF's queue, not ARM's budget: the subscription goes on, the pipeline waits
            pacer.completed(error.remaining_writes, sent_at=left_at)
            self._stops.answered(subscription, sent_at=sent_at)
            self._gates.refused(run.spec, id(run), error)
            return
        if error.status == 429:
            self._progress.throttled += 1
            self._stops.throttled(subscription, error, now=self._clock())
            wait = error.retry_after
            # a pause longer than a run may retry for would only park the subscription
            pacer.throttled_for(None if wait is None else min(wait, self._pause_cap_s))
        elif error.status is None:
            pacer.abandoned()
        else:
            pacer.completed(error.remaining_writes, sent_at=left_at)
        if error.status == 401:
            if self._stops.refused(subscription, error, sent_at=sent_at):
                self._stop_batch()
        elif error.status is not None:
            self._stops.answered(subscription, sent_at=sent_at)
        if error.sent and error.transient:
            # the answer was lost, maybe not the request: look before posting again
            run.may_exist = True
            run.reconcile_deadline = self._clock() + self._reconcile_window_s
