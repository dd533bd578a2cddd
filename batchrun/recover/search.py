"""Find the runs to recover after an incident, and decide, per recovery group, what to rerun.

For each factory of the scope (concurrently, at most ``concurrency`` at a time):

1. ``queryPipelineRuns`` with ``lastUpdatedAfter/Before`` = the window and ``Status In`` the
   statuses to recover (``PipelineName In`` too when every ``--pipeline`` is a plain name),
   following ``continuationToken`` to the end (at most ``max_pages`` pages, else an error).
   ADF's filters cannot compare times (its operators are Equals/NotEquals/In/NotIn), so
   ``runStart`` in ``[since, until)`` and pipeline globs are checked here.
2. The runs found are grouped by ``runGroupId``. A group one of whose runs ``isLatest`` is
   recovered from that run. Otherwise the group was rerun since, and its latest run (no status
   filter, updated up to now) decides. ADF takes one ``RunGroupId`` per filter, so these are
   found by a ``LatestOnly`` scan of the factory, then one query per group the scan did not
   reach within as many pages as there are groups (:func:`batchrun.arm.reads.latest_runs`):

   ====================================  ===================================================
   the group's latest run                decision
   ====================================  ===================================================
   has a status being recovered          recover from it (it may be after the window)
   Succeeded                             skip: "rerun already succeeded (run R)"
   Queued, InProgress, Canceling         skip: "rerun in progress (run R is InProgress)"
   another status                        skip: "latest run R is S, not one of --status"
   not found                             skip: "its latest run could not be found"
   ====================================  ===================================================

Reads are paced on the reads budget and retried (:mod:`batchrun.arm.reads`). A factory that
cannot be searched (404, 403, retries exhausted) is reported as such; a 401 (the token is bad
for every factory) stops the search.

The guard ``batchrun run`` applies before posting a recovery entry, so that the same recovery
manifest run twice never reruns a group twice, is :func:`batchrun.run.guard.newer_run_in_group`.
"""

from __future__ import annotations

import asyncio
import fnmatch
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from batchrun.arm.pacing import Pacers
from batchrun.arm.reads import (
    CLOCK_SKEW,
    RUNNING,
    PagedReads,
    PipelineRun,
    Sleep,
    latest_runs,
)
from batchrun.arm.retry import RetrySettings
from batchrun.errors import ApiError, AuthError
from batchrun.log import get_logger
from batchrun.model import FactoryRef, RunSpec
from batchrun.times import Now, utc_now

if TYPE_CHECKING:
    from collections.abc import Iterable

    from batchrun.arm.client import RunReader

RECOVERABLE: Final = ("Failed", "Cancelled", "Succeeded")
# ADF keeps pipeline-run data for 45 days ("Data Factory limits": run history retention)
RUN_RETENTION: Final = timedelta(days=45)
DEFAULT_STATUSES: Final = ("Failed", "Cancelled")
MAX_PAGES: Final = 10_000

_log = get_logger("batchrun.recover.search")


@dataclass(frozen=True, slots=True)
class StartPoint:
    """Where a recovery run starts: the failed activity (default), an activity, or the top."""

    from_failure: bool = True
    activity: str | None = None

    def describe(self) -> str:
        if self.activity is not None:
            return f"from activity {self.activity}"
        return "from the failed activity" if self.from_failure else "from the start"


FROM_FAILURE: Final = StartPoint()
FROM_START: Final = StartPoint(from_failure=False)


@dataclass(frozen=True, slots=True)
class Window:
    """Runs started in ``[since, until)`` and last updated in ``[since, until]``."""

    since: datetime
    until: datetime

    def contains(self, moment: datetime) -> bool:
        return self.since <= moment < self.until


def retention_warning(window: Window, *, now: datetime) -> str | None:
    """What to tell the user when the window reaches back past ADF's run retention, or None."""
    kept_since = now - RUN_RETENTION
    if window.since >= kept_since:
        return None
    return (
        f"--since {window.since:%Y-%m-%dT%H:%MZ} is more than {RUN_RETENTION.days} days ago: "
        f"ADF keeps pipeline runs for {RUN_RETENTION.days} days, so runs before "
        f"{kept_since:%Y-%m-%dT%H:%MZ} cannot be found, nor rerun; "
        f"only {kept_since:%Y-%m-%dT%H:%MZ} onwards is searched in effect"
    )


@dataclass(frozen=True, slots=True)
class RecoverSettings:
    """What ``batchrun recover`` searches for, and how hard it reads (built by the CLI)."""

    window: Window
    """The incident: runs started in ``[since, until)`` (``--since``, ``--until``; no default
    for ``since``, ``until`` defaults to now)."""
    statuses: tuple[str, ...] = DEFAULT_STATUSES
    """Run statuses to recover (``--status``, default Failed and Cancelled); one of
    ``RECOVERABLE``. Succeeded is there for reruns on purpose, never by default."""
    pipelines: tuple[str, ...] = ()
    """Pipeline names or globs, case-insensitive (``--pipeline``); empty (the default) means every
    pipeline. Plain names narrow ADF's query too; globs are matched here."""
    start: StartPoint = FROM_FAILURE
    """Where each recovery run starts (default: from the failed activity, ADF's
    ``startFromFailure``, so work that succeeded is not redone)."""
    concurrency: int = 8
    """Factories searched at once (``--concurrency``, default 8). Their reads are paced on each
    subscription's reads budget (250, refilled 25 a second), so more at once mostly wait."""
    retry: RetrySettings = field(default_factory=RetrySettings)
    """How each read is retried (``--max-attempts``, ``--max-retry-time``)."""
    max_pages: int = MAX_PAGES
    """Pages of one factory's query at most (default 10,000): a search that needs more would
    write a manifest too long to review, so that factory's search fails, asking for a narrower
    window or ``--pipeline``."""

    def wants_pipeline(self, name: str) -> bool:
        folded = name.casefold()
        return not self.pipelines or any(
            fnmatch.fnmatchcase(folded, pattern.casefold()) for pattern in self.pipelines
        )

    def query_filters(self) -> list[dict[str, Any]]:
        filters = [{"operand": "Status", "operator": "In", "values": list(self.statuses)}]
        if self.pipelines and not any(c in p for p in self.pipelines for c in "*?["):
            filters.append(
                {"operand": "PipelineName", "operator": "In", "values": list(self.pipelines)}
            )
        return filters


@dataclass(frozen=True, slots=True)
class Recovery:
    """One group to recover: rerun ``reference``, the latest run of the group."""

    factory: FactoryRef
    reference: PipelineRun
    found: tuple[PipelineRun, ...]  # the group's runs that matched the window, oldest first

    @property
    def id(self) -> str:
        return f"recover-{self.reference.run_id}"

    @property
    def outside_window(self) -> bool:
        """The reference is a rerun the window's query did not find (it ended after the window),
        with a status being recovered too."""
        return all(run.run_id != self.reference.run_id for run in self.found)

    def spec(self, start: StartPoint) -> RunSpec:
        return RunSpec(
            id=self.id,
            subscription=self.factory.subscription,
            resource_group=self.factory.resource_group,
            factory=self.factory.factory,
            pipeline=self.reference.pipeline,
            reference_run_id=self.reference.run_id,
            is_recovery=True,
            start_from_failure=True if start.activity is None and start.from_failure else None,
            start_activity_name=start.activity,
        )

    def sort_key(self) -> tuple[Any, ...]:
        return (*self.factory.key, self.reference.pipeline.casefold(),
                self.reference.run_start, self.reference.run_id)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Skip:
    """A group with runs in the window that is not recovered, and why."""

    factory: FactoryRef
    found: tuple[PipelineRun, ...]
    latest: PipelineRun | None
    reason: str

    @property
    def run(self) -> PipelineRun:
        return self.found[-1]

    def sort_key(self) -> tuple[Any, ...]:
        return (*self.factory.key, self.run.pipeline.casefold(),
                self.run.run_start, self.run.run_id)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FactorySearch:
    factory: FactoryRef
    found: tuple[PipelineRun, ...] = ()
    recoveries: tuple[Recovery, ...] = ()
    skipped: tuple[Skip, ...] = ()
    error: ApiError | AuthError | None = None


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    settings: RecoverSettings
    searches: tuple[FactorySearch, ...]  # in scope order; factories not searched are missing
    queries: int = 0
    # ARM rejected the token (401) or no token could be had: the search stopped
    auth_error: ApiError | AuthError | None = None

    @property
    def recoveries(self) -> list[Recovery]:
        found = [r for search in self.searches for r in search.recoveries]
        return sorted(found, key=Recovery.sort_key)

    @property
    def skipped(self) -> list[Skip]:
        return sorted((s for search in self.searches for s in search.skipped), key=Skip.sort_key)

    @property
    def failures(self) -> list[FactorySearch]:
        return [search for search in self.searches if search.error is not None]


async def find_recoveries(
    reader: RunReader,
    factories: Iterable[FactoryRef],
    settings: RecoverSettings,
    *,
    pacers: Pacers | None = None,
    sleep: Sleep = asyncio.sleep,
    now: Now = utc_now,
) -> RecoveryPlan:
    """Search every factory and decide what to recover; raises nothing but bugs."""
    reads = PagedReads(reader, settings.retry, pacers or Pacers(sleep=sleep), sleep)
    slots = asyncio.Semaphore(settings.concurrency)
    searches: dict[FactoryRef, FactorySearch] = {}
    halted: list[ApiError | AuthError] = []

    async def search(factory: FactoryRef) -> None:
        try:
            result = await _search(reads, factory, settings, now)
        except (ApiError, AuthError) as exc:
            result = FactorySearch(factory, error=exc)
            if isinstance(exc, AuthError) or exc.status == 401:
                halted.append(exc)
        searches[factory] = result

    order = list(factories)
    async with asyncio.TaskGroup() as group:
        for factory in order:
            await slots.acquire()
            if halted:
                slots.release()
                break
            task = group.create_task(search(factory))
            task.add_done_callback(lambda _: slots.release())
    done = tuple(searches[f] for f in order if f in searches)
    return RecoveryPlan(settings, done, reads.count, halted[0] if halted else None)


async def _search(
    reads: PagedReads, factory: FactoryRef, settings: RecoverSettings, now: Now
) -> FactorySearch:
    window, statuses = settings.window, frozenset(settings.statuses)
    body = {
        "lastUpdatedAfter": window.since,
        "lastUpdatedBefore": window.until,
        "filters": settings.query_filters(),
        "orderBy": [{"orderBy": "RunStart", "order": "ASC"}],
    }
    rows = await reads.query_all(factory, body, max_pages=settings.max_pages)
    unique: dict[str, PipelineRun] = {}
    for row in rows:
        run = PipelineRun.from_wire(row, where=f"queryPipelineRuns on {factory}")
        wanted = run.status in statuses and settings.wants_pipeline(run.pipeline)
        if wanted and window.contains(run.run_start):
            unique.setdefault(run.run_id.lower(), run)
    found = sorted(unique.values(), key=lambda r: (r.run_start, r.run_id))
    groups: dict[str, list[PipelineRun]] = {}
    for run in found:
        groups.setdefault(run.group_key, []).append(run)
    recoveries: list[Recovery] = []
    rerun: dict[str, list[PipelineRun]] = {}
    for key, runs in groups.items():
        newest = next((run for run in runs if run.is_latest), None)
        if newest is not None:
            recoveries.append(Recovery(factory, newest, tuple(runs)))
        else:
            rerun[key] = runs
    skipped: list[Skip] = []
    if rerun:
        earliest = min(runs[0].run_start for runs in rerun.values())
        latest = await latest_runs(
            reads,
            factory,
            sorted(runs[0].group_id for runs in rerun.values()),
            after=earliest - CLOCK_SKEW,
            before=now() + CLOCK_SKEW,
            max_pages=settings.max_pages,
            pipelines={runs[0].pipeline for runs in rerun.values()},
        )
        for key, runs in rerun.items():
            decision = _decide(factory, tuple(runs), latest.get(key), settings.statuses)
            if isinstance(decision, Recovery):
                recoveries.append(decision)
            else:
                skipped.append(decision)
    _log.info(
        "recover.factory",
        factory=str(factory),
        found=len(found),
        groups=len(groups),
        recover=len(recoveries),
        skipped=len(skipped),
    )
    return FactorySearch(factory, tuple(found), tuple(recoveries), tuple(skipped))


def _decide(
    factory: FactoryRef,
    runs: tuple[PipelineRun, ...],
    latest: PipelineRun | None,
    statuses: tuple[str, ...],
) -> Recovery | Skip:
    if latest is None:
        return Skip(factory, runs, None, "its latest run could not be found")
    if latest.status in statuses:
        return Recovery(factory, latest, runs)
    if latest.status == "Succeeded":
        reason = f"rerun already succeeded (run {latest.run_id})"
    elif latest.status in RUNNING:
        reason = f"rerun in progress (run {latest.run_id} is {latest.status})"
    else:
        wanted = ", ".join(statuses)
        reason = f"latest run {latest.run_id} is {latest.status}, not one of --status {wanted}"
    return Skip(factory, runs, latest, reason)
