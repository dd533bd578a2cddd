"""Find the run that a lost createRun response may have created, before posting again.

createRun has no idempotency key. When an attempt ends ambiguously (a read timeout, a connection
cut after the request was written, a 5xx) the run may exist. Before the next attempt the
scheduler asks ADF: ``queryPipelineRuns`` on the factory, ``PipelineName`` equal, runs updated
since just before the first attempt, and takes the earliest run that

- was invoked manually (a createRun, not a trigger),
- started no earlier than the first attempt (less a clock-skew margin),
- has the same parameters once ours are put in ADF's string form (non-strings JSON-encoded); a
  rerun of a reference run has the reference run's parameters (ADF ignores the body then) and,
  for a recovery, is in the reference run's group,
- is not claimed already by another entry of this batch (two identical entries make two runs).

ADF is not read-your-writes, so a run that is not found is looked for again, with backoff, until
``window_s`` after the ambiguous attempt; only then is it taken not to exist. If ADF cannot be
asked (403 on reads, say) the run is failed rather than re-posted blind: ``--resume`` asks again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from batchrun.arm.client import RunReader
from batchrun.arm.pacing import Pacers
from batchrun.arm.reads import PagedReads
from batchrun.arm.retry import RetrySettings, retrying
from batchrun.errors import ApiError
from batchrun.model import FactoryRef, RunSpec
from batchrun.run.constants import RECONCILE_CLOCK_SKEW, RECONCILE_MAX_LOOKS, RECONCILE_MAX_PAGES
from batchrun.times import parse_time

RECONCILE_FAILED = "ReconcileFailed"


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    """How long, and how often, ADF is asked for a run whose createRun answer was lost."""

    window_s: float = 30.0
    """Seconds after an ambiguous attempt (or after a crashed process's intent) during which a
    run not found yet is looked for again; after it the run is taken not to exist and is posted
    again (``--reconcile-window``, default 30). ADF's queries are not read-your-writes: a run
    just created can take seconds to show, and a duplicate costs more than the wait."""
    first_poll_s: float = 1.0
    """Seconds between the first look and the second (default 1); each later wait doubles."""
    max_poll_s: float = 8.0
    """Seconds, the longest wait between two looks (default 8): the default window makes about
    seven looks, a handful of reads per lost answer rather than a stream of them."""


def adf_form(value: Any) -> Any:
    """A parameter value as ADF reports it back, parsed again so spacing does not matter."""
    return value if isinstance(value, str) else json.loads(json.dumps(value, default=str))


def parameters_match(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> bool:
    """Whether a run ADF reports (``theirs``: every value a string) has our parameters."""
    if set(ours) != set(theirs):
        return False
    for name, value in ours.items():
        reported = theirs[name]
        if isinstance(value, str):
            if reported != value:
                return False
            continue
        try:
            parsed = json.loads(reported) if isinstance(reported, str) else reported
        except ValueError:
            return False
        if parsed != adf_form(value):
            return False
    return True


@dataclass(frozen=True, slots=True)
class _Reference:
    group: str
    parameters: dict[str, Any]


class Reconciler:
    """Finds, for an entry whose createRun answer was lost, the run that request created.

    The claim rules: a runId is claimed once it is known to belong to an entry of this batch
    (answered to one, found for one, or in the resumed report); a claimed run is never found for
    another entry, so two identical entries make two runs, never one run reported twice.

    The window: a run not found is looked for again, waits doubling from ``first_poll_s`` up to
    ``max_poll_s``, until the deadline the scheduler gives (``window_s`` after the ambiguous
    attempt); only then is it taken not to exist. Reads are paced on the reads budget and
    retried; one that cannot be made fails the run with ``ReconcileFailed`` rather than posting
    it again blind.
    """

    def __init__(
        self,
        *,
        reader: RunReader,
        settings: ReconcileSettings,
        retry: RetrySettings,
        pacers: Pacers | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._reader = reader
        self._settings = settings
        self._retry = retry
        self._reads = PagedReads(reader, retry, pacers or Pacers(), sleep)
        self._clock = clock
        self._sleep = sleep
        self._claimed: set[str] = set()
        self._references: dict[str, _Reference] = {}
        self._run_lookups = 0

    @property
    def read_count(self) -> int:
        """Reads made so far: queries (each page) and run lookups."""
        return self._reads.count + self._run_lookups

    def claim(self, run_id: str) -> None:
        """A run that belongs to an entry of this batch: never hand it to another entry."""
        self._claimed.add(run_id)

    async def find(self, spec: RunSpec, *, created_since: datetime, deadline: float) -> str | None:
        """The unclaimed run of ``spec`` created since ``created_since``, looking again until
        ``deadline`` (a monotonic time); claims and returns its runId, or None."""
        delay = self._settings.first_poll_s
        for _ in range(RECONCILE_MAX_LOOKS):
            run_id = await self._look_once(spec, created_since)
            if run_id is not None:
                self.claim(run_id)
                return run_id
            left = deadline - self._clock()
            if left <= 0:
                return None
            await self._sleep(min(delay, left))
            delay = min(delay * 2, self._settings.max_poll_s)
        return None

    async def _look_once(self, spec: RunSpec, since: datetime) -> str | None:
        try:
            reference = await self._reference(spec)
            group = reference.group if reference is not None and spec.is_recovery else None
            for run in await self._candidates(spec, since, group):
                if self._matches(spec, run, since, group, reference):
                    return str(run["runId"])
        except ApiError as exc:
            raise ApiError(
                status=exc.status,
                code=RECONCILE_FAILED,
                message=(
                    f"an earlier attempt may have created this run, and ADF could not be asked "
                    f"({exc.code}: {exc.message}); not posted again, to avoid a duplicate: "
                    "--resume will ask again"
                ),
                request_id=exc.request_id,
                transient=False,
            ) from exc
        return None

    def _matches(
        self,
        spec: RunSpec,
        run: Mapping[str, Any],
        since: datetime,
        group: str | None,
        reference: _Reference | None,
    ) -> bool:
        run_id = run.get("runId")
        if not isinstance(run_id, str) or run_id in self._claimed:
            return False
        if run.get("pipelineName") != spec.pipeline:
            return False
        invoked = run.get("invokedBy") or {}
        if invoked.get("invokedByType", invoked.get("name")) != "Manual":
            return False
        started = parse_time(run.get("runStart"), naive_is_utc=True)
        if started is not None and started < since - RECONCILE_CLOCK_SKEW:
            return False
        if group is not None and run.get("runGroupId") != group:
            return False
        if reference is not None:
            return dict(run.get("parameters") or {}) == reference.parameters
        return parameters_match(spec.parameters, run.get("parameters") or {})

    async def _candidates(
        self, spec: RunSpec, since: datetime, group: str | None
    ) -> list[dict[str, Any]]:
        filters: list[dict[str, Any]] = [
            {"operand": "PipelineName", "operator": "Equals", "values": [spec.pipeline]}
        ]
        if spec.is_recovery and group is not None:
            filters.append({"operand": "RunGroupId", "operator": "Equals", "values": [group]})
        body: dict[str, Any] = {
            "lastUpdatedAfter": since - RECONCILE_CLOCK_SKEW,
            "lastUpdatedBefore": datetime.now(UTC) + RECONCILE_CLOCK_SKEW,
            "filters": filters,
            "orderBy": [{"orderBy": "RunStart", "order": "ASC"}],
        }
        factory = FactoryRef(spec.subscription, spec.resource_group, spec.factory)
        return await self._reads.query_all(factory, body, max_pages=RECONCILE_MAX_PAGES)

    async def _reference(self, spec: RunSpec) -> _Reference | None:
        """The run ``spec`` reruns: ADF gives the new run its parameters (the body is ignored)
        and, for a recovery, its group."""
        reference = spec.reference_run_id
        if reference is None:
            return None
        if reference not in self._references:
            run = await self._get_retried(
                lambda: self._reader.get_pipeline_run(
                    subscription=spec.subscription,
                    resource_group=spec.resource_group,
                    factory=spec.factory,
                    run_id=reference,
                )
            )
            self._references[reference] = _Reference(
                group=str(run.get("runGroupId") or reference),
                parameters=dict(run.get("parameters") or {}),
            )
        return self._references[reference]

    async def _get_retried(self, call: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        async for attempt in retrying(self._retry, sleep=self._sleep):
            with attempt:
                self._run_lookups += 1
                return await call()
        raise AssertionError("retrying() reraises")  # pragma: no cover
