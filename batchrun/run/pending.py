"""One run on its way through its attempts, and the report line it ends with."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from batchrun.report.writer import RunResult

if TYPE_CHECKING:
    import asyncio

    from batchrun.arm.client import CreateRunResponse
    from batchrun.errors import ApiError
    from batchrun.model import RunSpec


@dataclass(slots=True)
class PendingRun:
    """A manifest entry being triggered: what its attempts so far leave to the next one."""

    spec: RunSpec
    started_at: datetime
    """Wall-clock time this process took the run up: the report line's ``started_at``."""
    client_request_id: str
    """Sent as ``x-ms-client-request-id`` with every attempt, and written in the run's intent."""
    first_intent_at: datetime | None
    """Wall-clock time of the run's first intent, this process's or a crashed one's (read back
    by ``--resume``); None until the first attempt is about to leave. A run that an attempt may
    have created started after it."""
    reconcile_deadline: float | None = None
    """Set while an earlier attempt may have created the run (its answer was lost): before
    posting again, ask ADF, and keep asking until this monotonic time."""
    attempts: int = 0
    """createRun requests sent so far."""
    first_attempt_at: float | None = None
    """Monotonic time the run's first attempt began: ``--max-retry-time`` counts from it."""
    failures: int = 0
    """Attempts that failed and count against ``--max-attempts`` (ADF's queue refusals do
    not): kept across the waits for a full pipeline queue, which each begin a new policy."""
    may_exist: bool = False
    """Whether an earlier attempt (this process's or a crashed one's) may have created the run:
    a newer run in a recovery group since the first attempt is then taken as ours."""
    room: asyncio.Semaphore | None = None
    """Its lane's room for tasks (:class:`batchrun.run.lanes.Lane`), while the run has a task."""
    holds_room: bool = False

    def leave_room(self) -> None:
        """Give the lane's room back (a run waiting for reconciliation sends nothing for a
        while: the runs behind it take the room meanwhile); at most once."""
        if self.holds_room and self.room is not None:
            self.holds_room = False
            self.room.release()

    async def take_room(self) -> None:
        """Wait for room in the lane again before another attempt."""
        if not self.holds_room and self.room is not None:
            await self.room.acquire()
            self.holds_room = True

    @classmethod
    def begin(cls, spec: RunSpec, *, first_intent_at: datetime | None) -> PendingRun:
        return cls(
            spec=spec,
            started_at=datetime.now(UTC),
            client_request_id=str(uuid.uuid4()),
            first_intent_at=first_intent_at,
        )

    def succeeded(
        self, run_id: str, *, response: CreateRunResponse | None = None, reconciled: bool = False
    ) -> RunResult:
        return RunResult(
            spec=self.spec,
            status="succeeded",
            started_at=self.started_at,
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
            started_at=self.started_at,
            finished_at=datetime.now(UTC),
            attempts=self.attempts,
            reason=reason,
        )

    def failed(self, error: ApiError) -> RunResult:
        return RunResult(
            spec=self.spec,
            status="failed",
            started_at=self.started_at,
            finished_at=datetime.now(UTC),
            attempts=self.attempts,
            http_status=error.status,
            error=error.as_report(),
            request_id=error.request_id,
            correlation_id=error.correlation_id,
        )
