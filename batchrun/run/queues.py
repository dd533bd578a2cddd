"""ADF's own queue, per pipeline: a pipeline whose queue is full is held back, not failed.

A pipeline with a ``concurrency`` value queues at most 100 runs; past that ADF refuses createRun
with "Pipeline execution throttled" (:func:`batchrun.arm.answers.is_queue_refusal`). That means
*later*: the runs of that pipeline wait here, off the request slots and off the subscription's
pacer, while the other pipelines of the same subscription keep flowing.

The gate of one pipeline (factory and pipeline, names case-insensitive):

- **open** until a refusal: runs go as usual;
- **closed** for a backoff after a refusal (the refusal's ``Retry-After`` when it gives one,
  else ``QUEUE_BACKOFF_MIN_S`` doubling up to ``QUEUE_BACKOFF_MAX_S`` while refusals go on);
- then **probing**: one run may go; each run ADF takes doubles how many may be under way at
  once, each refusal closes the gate again. Once as many may go as a subscription has tasks,
  the gate is open again. The queue drains at the pipeline's own pace, so probing follows it
  with a refusal now and then instead of a stream of them.

The stop: refusals never count as attempts, and a run waiting for the queue is not failed while
the queue drains, however long that takes. It is failed (with ADF's refusal) only when the
pipeline has taken no run for ``stall_s`` (``--max-retry-time``) since its first refusal or its
last accepted run: then the queue is not draining (runs stuck, or a concurrency of 0 in effect),
and waiting longer would only hide it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from batchrun.errors import ApiError
from batchrun.run.constants import QUEUE_BACKOFF_MAX_S, QUEUE_BACKOFF_MIN_S

if TYPE_CHECKING:
    from collections.abc import Callable

    from batchrun.model import RunSpec

GateKey = tuple[str, str, str, str]


def gate_key(spec: RunSpec) -> GateKey:
    """One pipeline of one factory; ARM names are case-insensitive."""
    return _folded(spec.subscription, spec.resource_group, spec.factory, spec.pipeline)


@functools.lru_cache(maxsize=4096)
def _folded(subscription: str, resource_group: str, factory: str, pipeline: str) -> GateKey:
    # asked several times for every attempt of every run, of a few pipelines: folded once each
    return (
        subscription.casefold(),
        resource_group.casefold(),
        factory.casefold(),
        pipeline.casefold(),
    )


@dataclass(slots=True)
class PipelineGate:
    """What ADF's refusals say about one pipeline's queue."""

    refused: ApiError
    """The last refusal: the error of a run failed because the queue stopped draining."""
    progress_at: float
    """When the pipeline last took a run (or first refused one), on the scheduler's clock."""
    reopen_at: float
    backoff_s: float = QUEUE_BACKOFF_MIN_S
    allowance: int = 1
    """Runs of the pipeline that may be under way while probing."""
    under_way: set[int] = field(default_factory=set)
    """``id()`` of the runs let through while probing and not answered yet."""


class PipelineGates:
    """The gates of the pipelines ADF refused for a full queue; other pipelines have none."""

    def __init__(self, *, clock: Callable[[], float], stall_s: float, open_at: int) -> None:
        self._clock = clock
        self._stall_s = stall_s
        self._open_at = open_at  # probing this many at once is as good as open
        self._gates: dict[GateKey, PipelineGate] = {}

    def holds(self, spec: RunSpec) -> bool:
        """Whether a run of ``spec``'s pipeline must wait before it is handed a task."""
        gate = self._gates.get(gate_key(spec))
        if gate is None or self.stalled(spec) is not None:
            return False
        return self._clock() < gate.reopen_at or len(gate.under_way) >= gate.allowance

    def reopens_in(self, spec: RunSpec) -> float | None:
        """Seconds until ``spec``'s gate lets a run go by the clock; None when only an answer
        (a run taken or refused) can change it."""
        gate = self._gates.get(gate_key(spec))
        if gate is None:
            return 0.0
        wait = gate.reopen_at - self._clock()
        return wait if wait > 0 else None

    def let_through(self, spec: RunSpec, token: int) -> None:
        """A run of a probing pipeline is handed a task: it is under way until answered."""
        gate = self._gates.get(gate_key(spec))
        if gate is not None:
            gate.under_way.add(token)

    def may_send(self, spec: RunSpec, token: int) -> bool:
        """Checked again just before the request leaves: a run that got its task while the
        pipeline was open, but whose pipeline was refused since, waits instead."""
        gate = self._gates.get(gate_key(spec))
        if gate is None or token in gate.under_way:
            return True
        return self._clock() >= gate.reopen_at and len(gate.under_way) < gate.allowance

    def stalled(self, spec: RunSpec) -> ApiError | None:
        """The failed line's error when the pipeline has taken no run for ``stall_s``: ADF's
        last refusal, saying how long the queue has not drained."""
        gate = self._gates.get(gate_key(spec))
        if gate is None or self._clock() - gate.progress_at < self._stall_s:
            return None
        refused = gate.refused
        return ApiError(
            status=refused.status,
            code=refused.code,
            message=(
                f"ADF's queue of pipeline {spec.pipeline} took no run for {self._stall_s:g} s "
                f"(--max-retry-time): {refused.message}"
            ),
            request_id=refused.request_id,
            correlation_id=refused.correlation_id,
            transient=False,
            sent=False,
        )

    def accepted(self, spec: RunSpec, token: int) -> None:
        """ADF took a run of the pipeline: the queue drains; let more go."""
        key = gate_key(spec)
        gate = self._gates.get(key)
        if gate is None:
            return
        gate.under_way.discard(token)
        gate.progress_at = self._clock()
        gate.backoff_s = QUEUE_BACKOFF_MIN_S
        gate.allowance *= 2
        if gate.allowance >= self._open_at:
            del self._gates[key]

    def refused(self, spec: RunSpec, token: int, error: ApiError) -> None:
        """ADF refused a run of the pipeline for a full queue: close the gate for a while."""
        key = gate_key(spec)
        now = self._clock()
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = PipelineGate(refused=error, progress_at=now, reopen_at=now)
        elif now >= gate.reopen_at:
            # a probe refused (not one of a burst sent before the gate closed): wait longer
            gate.backoff_s = min(gate.backoff_s * 2, QUEUE_BACKOFF_MAX_S)
        gate.under_way.discard(token)
        gate.refused = error
        gate.allowance = 1
        wait = error.retry_after if error.retry_after is not None else gate.backoff_s
        gate.reopen_at = max(gate.reopen_at, now + min(wait, QUEUE_BACKOFF_MAX_S))

    def settled(self, spec: RunSpec, token: int) -> None:
        """The run ended otherwise (another error, a stop): it is no longer under way."""
        gate = self._gates.get(gate_key(spec))
        if gate is not None:
            gate.under_way.discard(token)
