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

The runs waiting on one pipeline share their reads (:mod:`batchrun.run.sharedreads`): one query
per poll, whatever their number, matched by each with these rules.

ADF is not read-your-writes, so a run that is not found is looked for again, with backoff, for the
visibility window after the ambiguous attempt; only then is it taken not to exist. The window is
learned from this batch's own runs (:mod:`batchrun.run.visibility`), never longer than
``window_s``. If ADF cannot be asked (403 on reads, say) the run is failed rather than re-posted
blind: ``--resume`` asks again.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from batchrun.arm.pacing import Pacers
from batchrun.arm.reads import PagedReads
from batchrun.arm.retry import RetrySettings, retrying
from batchrun.errors import ApiError
from batchrun.log import get_logger
from batchrun.run.claims import Claims
from batchrun.run.constants import RECONCILE_MAX_LOOKS
from batchrun.run.sharedreads import (
    MARGIN,
    Candidate,
    ChannelKey,
    Poll,
    SharedReads,
    channel_key,
    claim_key,
    sample_key,
)
from batchrun.run.visibility import VisibilityLag, Window, WindowRule

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from batchrun.arm.client import RunReader
    from batchrun.model import RunSpec

__all__ = [
    "MARGIN",
    "RECONCILE_FAILED",
    "ReconcileSettings",
    "Reconciler",
    "adf_form",
    "parameters_match",
    "same_value",
]

RECONCILE_FAILED = "ReconcileFailed"
# the learned window is logged again when it moves by more than this share
_LOG_CHANGE = 0.25

_log = get_logger("batchrun.run.reconcile")


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    """How long, and how often, ADF is asked for a run whose createRun answer was lost."""

    window_s: float = 30.0
    """Seconds after an ambiguous attempt (or after a crashed process's intent) during which a
    run not found yet may still be looked for (``--reconcile-window``, default 30): the ceiling
    of the visibility window, and the window itself until the batch has measured ADF's lag.
    ADF's queries are not read-your-writes: a run just created can take seconds to show, and a
    duplicate costs more than the wait."""
    first_poll_s: float = 1.0
    """Seconds between the first look and the second (default 1); each later wait doubles. Also
    the shortest time between two polls of one pipeline, however many runs wait on it."""
    max_poll_s: float = 8.0
    """Seconds, the longest wait between two looks (default 8)."""
    visibility: WindowRule = field(default_factory=WindowRule)
    """How the window is learned from the lags measured on this batch's runs."""


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
    attempt) or, sooner, until the learned visibility window after that attempt has passed (when
    ADF was measured quick on the same pipeline around that time); only then is it taken not to
    exist. Reads are shared per pipeline, paced on the reads budget and
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
        self._lag = VisibilityLag(ceiling_s=settings.window_s, rule=settings.visibility)
        self._shared = SharedReads(
            reads=self._reads,
            lag=self._lag,
            min_gap_s=settings.first_poll_s,
            clock=clock,
            sleep=sleep,
        )
        self._clock = clock
        self._sleep = sleep
        self._claimed = Claims()
        self._references: dict[str, _Reference] = {}
        self._run_lookups = 0
        self._logged = self._lag.window

    @property
    def read_count(self) -> int:
        """Reads made so far: queries (each page) and run lookups."""
        return self._reads.count + self._run_lookups

    @property
    def window(self) -> Window:
        """The visibility window in force, and how it was arrived at."""
        return self._lag.window

    def claim(self, run_id: str) -> None:
        """A run that belongs to an entry of this batch: never hand it to another entry."""
        self._claimed.add(claim_key(run_id))

    def created(self, spec: RunSpec, run_id: str) -> None:
        """A run this batch just created (its answer came back): claimed, and a sample of how
        long ADF takes to list a new run."""
        self._claimed.add(claim_key(run_id))
        self._lag.created(sample_key(spec), run_id, at=self._clock())

    async def find(self, spec: RunSpec, *, created_since: datetime, deadline: float) -> str | None:
        """The unclaimed run of ``spec`` created since ``created_since``, looking again until
        ``deadline`` (a monotonic time, ``window_s`` after the ambiguous attempt) or the learned
        window after that attempt, whichever comes first; claims and returns its runId, or None."""
        try:
            reference = await self._reference(spec)
            group = reference.group if reference is not None and spec.is_recovery else None
            key = channel_key(spec, group)
            token = self._shared.enter(key, created_since)
            try:
                return await self._look(
                    spec, key, since=created_since, deadline=deadline, group=group,
                    reference=reference,
                )  # fmt: skip
            finally:
                self._shared.leave(key, token)
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

    async def _look(
        self,
        spec: RunSpec,
        key: ChannelKey,
        *,
        since: datetime,
        deadline: float,
        group: str | None,
        reference: _Reference | None,
    ) -> str | None:
        ambiguous_at = deadline - self._settings.window_s
        delay = self._settings.first_poll_s
        wanted = self._clock()
        for _ in range(RECONCILE_MAX_LOOKS):
            poll = await self._shared.poll(key, spec, since=since, not_before=wanted)
            self._log_window()
            run_id = self._pick(spec, poll, since, group, reference)
            if run_id is not None:
                self.claim(run_id)
                return run_id
            # re-read each time: the window may have been learned, or gone back to the ceiling
            window = self._lag.seconds_for(sample_key(spec), lost_at=ambiguous_at)
            end = min(deadline, ambiguous_at + window)
            if poll.sent >= end:
                return None
            now = self._clock()
            wanted = min(now + delay, end)
            if wanted > now:
                await self._sleep(wanted - now)
            delay = min(delay * 2, self._settings.max_poll_s)
        return None

    def _pick(
        self,
        spec: RunSpec,
        poll: Poll,
        since: datetime,
        group: str | None,
        reference: _Reference | None,
    ) -> str | None:
        earliest = (self._shared.server_time(since) or since) - MARGIN
        name = spec.pipeline.casefold()
        wanted_group = group.lower() if group is not None else None
        for run in poll.runs:
            if run.claim in self._claimed or run.pipeline != name or not run.manual:
                continue
            # a run without a runStart is not ruled out by time (the other tests still apply)
            if run.started is not None and run.started < earliest:
                continue
            if wanted_group is not None and run.group != wanted_group:
                continue
            if _parameters_fit(spec, run, reference):
                return run.run_id
        return None

    def _log_window(self) -> None:
        window, logged = self._lag.window, self._logged
        moved = abs(window.seconds - logged.seconds) > _LOG_CHANGE * max(logged.seconds, 1e-9)
        if window.learned != logged.learned or moved:
            self._logged = window
            _log.info(
                "reconcile.window",
                window_s=round(window.seconds, 2),
                learned=window.learned,
                samples=window.samples,
                ceiling_s=self._settings.window_s,
            )

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


def _parameters_fit(spec: RunSpec, run: Candidate, reference: _Reference | None) -> bool:
    if reference is not None:
        return all(run.parameters.get(k) == v for k, v in reference.parameters.items())
    return parameters_match(spec.parameters, run.parameters)
