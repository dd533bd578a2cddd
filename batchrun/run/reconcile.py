"""Find the run that a lost createRun response may have created, before posting again.

createRun has no idempotency key. When an attempt ends ambiguously (a read timeout, a connection
cut after the request was written, a 5xx) the run may exist. Before the next attempt the
scheduler asks ADF: ``queryPipelineRuns`` on the factory, ``PipelineName`` equal, runs updated
since the first attempt, and takes the earliest run that

- is of our pipeline, names compared case-insensitively (ADF answers with its own spelling),
- was invoked manually (a createRun, not a trigger),
- started no earlier than our first attempt, in the server's clock, less ``MARGIN``: the
  server's clock is measured from the ``Date`` header of the query's answer (ours may be off by
  minutes; a run started before our first attempt cannot be ours),
- has each of our parameters, in ADF's string form (non-strings JSON-encoded; booleans as
  ``true`` or ``True``; numbers by value), among its own; keys we did not send (the pipeline's
  defaults, which ADF may list too) do not matter. A rerun of a reference run has the reference
  run's parameters (ADF ignores the body then) and, for a recovery, is in the reference run's
  group,
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
from datetime import UTC, date, datetime, timedelta
from typing import Any

from batchrun.arm.client import RunReader
from batchrun.arm.pacing import Pacers
from batchrun.arm.reads import PagedReads
from batchrun.arm.retry import RetrySettings, retrying
from batchrun.errors import ApiError
from batchrun.model import FactoryRef, RunSpec
from batchrun.run.constants import RECONCILE_MAX_LOOKS, RECONCILE_MAX_PAGES
from batchrun.times import parse_time

RECONCILE_FAILED = "ReconcileFailed"
# How far before our first attempt (in server time) a run may have started and still be ours.
# The server's clock is read from Date, which is truncated to the second and read after the
# answer travelled, so the estimate is already low; this covers ADF stamping runStart on another
# machine than the one that wrote Date (hosts are NTP-synced to well under a second) and a step
# of our own clock between the attempt and the look. A few seconds: a foreign manual run would
# have to start inside them, with our pipeline and parameters, to be taken for ours.
MARGIN = timedelta(seconds=5)
# With no server clock measured yet the first query is this wide; its Date then narrows it.
_UNMEASURED = timedelta(hours=1)
_MAX_PAGES = 200


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
    return value if isinstance(value, str) else json.loads(json.dumps(value, default=_iso))


def parameters_match(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> bool:
    """Whether every parameter we sent is among the run's, with the same value as ADF writes it.

    The run may list more (ADF adds the pipeline's defaults for parameters not sent)."""
    return all(name in theirs and same_value(value, theirs[name]) for name, value in ours.items())


def same_value(ours: Any, reported: Any) -> bool:
    """Our value against ADF's string for it: strings (and dates) exactly; a boolean as ``true``
    in any case (.NET writes ``True``); anything else parsed as JSON and compared with numbers by
    value (``1``, ``1.0`` and ``1E0`` are one number) but never a boolean for a number."""
    form = adf_form(ours)
    if isinstance(form, str):  # a string, or a date sent as its ISO 8601 text
        return bool(reported == form)
    if isinstance(form, bool) and isinstance(reported, str):
        return reported.strip().casefold() == str(form).casefold()
    try:
        parsed = json.loads(reported) if isinstance(reported, str) else reported
    except ValueError:
        return False
    return _equal(form, parsed)


def _equal(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return type(ours) is type(theirs) and ours == theirs
    if isinstance(ours, int | float) and isinstance(theirs, int | float):
        return bool(ours == theirs)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(map(_equal, ours, theirs))
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(_equal(ours[k], theirs[k]) for k in ours)
    return type(ours) is type(theirs) and bool(ours == theirs)


def _iso(value: object) -> str:
    # what the client sends for a YAML date or timestamp (arm.client._json_default)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


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

    def _server_time(self, moment: datetime) -> datetime | None:
        """``moment`` of our clock on the server's clock, if the server's was measured."""
        offset = self._reads.server_offset
        return None if offset is None else moment + offset

    async def _look_once(self, spec: RunSpec, since: datetime) -> str | None:
        try:
            reference = await self._reference(spec)
            group = reference.group if reference is not None and spec.is_recovery else None
            measured = self._server_time(since) is not None
            runs = await self._candidates(spec, since, group)
            if not measured and not self._covered(since):
                # the first answer showed the server's clock far from ours: ask in its time
                runs = await self._candidates(spec, since, group)
            earliest = (self._server_time(since) or since) - MARGIN
            for run in runs:
                if self._matches(spec, run, earliest, group, reference):
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

    def _covered(self, since: datetime) -> bool:
        """Whether the unmeasured first query's window held every run we could be after."""
        start = self._server_time(since)
        return start is None or abs(start - since) < _UNMEASURED - MARGIN

    def _matches(
        self,
        spec: RunSpec,
        run: Mapping[str, Any],
        earliest: datetime,
        group: str | None,
        reference: _Reference | None,
    ) -> bool:
        run_id = run.get("runId")
        if not isinstance(run_id, str) or run_id in self._claimed:
            return False
        name = run.get("pipelineName")
        if not isinstance(name, str) or name.casefold() != spec.pipeline.casefold():
            return False
        invoked = run.get("invokedBy") or {}
        if invoked.get("invokedByType", invoked.get("name")) != "Manual":
            return False
        started = parse_time(run.get("runStart"), naive_is_utc=True)
        # a run without a runStart is not ruled out by time (the other tests still apply)
        if started is not None and started < earliest:
            return False
        if group is not None and str(run.get("runGroupId") or "").lower() != group.lower():
            return False
        parameters = run.get("parameters") or {}
        if reference is not None:
            return all(parameters.get(k) == v for k, v in reference.parameters.items())
        return parameters_match(spec.parameters, parameters)

    async def _candidates(
        self, spec: RunSpec, since: datetime, group: str | None
    ) -> list[dict[str, Any]]:
        filters: list[dict[str, Any]] = [
            {"operand": "PipelineName", "operator": "Equals", "values": [spec.pipeline]}
        ]
        if spec.is_recovery and group is not None:
            filters.append({"operand": "RunGroupId", "operator": "Equals", "values": [group]})
        start, now = self._server_time(since), self._server_time(datetime.now(UTC))
        body: dict[str, Any] = {
            # a run is updated no earlier than it starts
            "lastUpdatedAfter": since - _UNMEASURED if start is None else start - MARGIN,
            "lastUpdatedBefore": (now or datetime.now(UTC)) + _UNMEASURED,
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
