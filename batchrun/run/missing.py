"""``batchrun run --only-missing``: leave out the runs that ADF already ran to success.

Before anything is sent, each factory of the manifest is asked once (paged to the end, on the
reads budget, factories at once up to a bound) for its ``Succeeded`` runs of the manifest's
pipelines updated since ``since``. A run of the manifest is *already succeeded* when one of
those runs is of its pipeline (names compared case-insensitively), ended at or after ``since``
and has its parameters: the reconciliation rule (:func:`~batchrun.run.reconcile.parameters_match`:
each of ours among ADF's echoed ones, in ADF's string form, numbers by value; parameters ADF lists
and we do not send, such as the pipeline's defaults, do not matter). Who invoked it does not:
a trigger's run that loaded the same day did the work a manual one would have.

Each ADF run stands for at most one run of the manifest: two identical entries mean two runs,
and only as many are left out as ADF has. The latest success goes first, so the line names it.

A recovery entry (``reference_run_id``/``is_recovery``) is never left out: it reruns a given run,
and another run with the same parameters having succeeded says nothing about that one.

A search that cannot be made (a read refused, or failing after its retries) stops the batch
before anything is sent: triggering everything would run twice what did succeed, and the flag
exists to prevent exactly that.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from batchrun.arm.pacing import Pacers
from batchrun.arm.reads import CLOCK_SKEW, PagedReads
from batchrun.errors import ApiError, AuthError
from batchrun.log import get_logger
from batchrun.model import FactoryRef
from batchrun.report.writer import RunResult
from batchrun.run.constants import MISSING_FACTORIES_AT_ONCE, MISSING_MAX_PAGES, MISSING_PIPELINES
from batchrun.run.reconcile import parameters_match
from batchrun.run.sharedreads import Candidate, claim_key
from batchrun.times import Now, parse_time, utc_iso, utc_now

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection, Iterable

    from batchrun.arm.client import RunReader
    from batchrun.arm.retry import RetrySettings
    from batchrun.model import RunSpec
    from batchrun.report.writer import ReportWriter
    from batchrun.run.progress import Progress

__all__ = [
    "DEFAULT_SINCE",
    "ONLY_MISSING_FAILED",
    "AlreadySucceeded",
    "OnlyMissing",
    "Search",
    "find_succeeded",
]

ONLY_MISSING_FAILED: Final = "OnlyMissingFailed"
DEFAULT_SINCE: Final = timedelta(days=7)
SUCCEEDED: Final = "Succeeded"

_log = get_logger("batchrun.run.missing")

# casefolded subscription, resource group, factory: ARM names are case-insensitive
_FactoryKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class OnlyMissing:
    """``--only-missing``: what counts as already done."""

    since: datetime
    """Only runs that ended at or after this (aware) time count (``--since``, default 7 days
    back). ADF keeps runs 45 days: an older ``since`` finds nothing more."""


@dataclass(frozen=True, slots=True)
class AlreadySucceeded:
    """The ADF run that makes a run of the manifest already done."""

    run_id: str
    ended: datetime

    @property
    def reason(self) -> str:
        return (
            f"already succeeded in ADF (run {self.run_id}, "
            f"ended {utc_iso(self.ended, timespec='seconds')})"
        )


@dataclass(slots=True)
class Search:
    """What the search found: the runs of the manifest already done, and what it cost."""

    found: dict[str, AlreadySucceeded] = field(default_factory=dict)
    """by the manifest's run id"""
    reads: int = 0
    """queryPipelineRuns pages asked for, retries included"""
    factories: int = 0
    searched: int = 0
    """runs of the manifest looked for (recovery entries are not)"""

    def leave_out(
        self, todo: list[RunSpec], writer: ReportWriter, progress: Progress
    ) -> dict[str, dict[str, Any]]:
        """Take the runs found out of ``todo``, each with its ``skipped`` line; the lines written,
        by run id (for the runs that others need, they are what decides those)."""
        if not self.found:
            return {}
        now = datetime.now(UTC)
        kept: list[RunSpec] = []
        written: dict[str, dict[str, Any]] = {}
        for spec in todo:
            done = self.found.get(spec.id)
            if done is None:
                kept.append(spec)
                continue
            result = skipped_result(spec, done, at=now)
            writer.write(result)
            written[spec.id] = result.to_record()
            progress.count_finished("skipped")
        todo[:] = kept
        return written


def skipped_result(spec: RunSpec, done: AlreadySucceeded, *, at: datetime) -> RunResult:
    return RunResult(
        spec=spec,
        status="skipped",
        started_at=at,
        finished_at=at,
        attempts=0,
        run_id=done.run_id,
        reason=done.reason,
        extra={"already_succeeded": True},
    )


@dataclass(frozen=True, slots=True)
class _Success:
    run: Candidate
    ended: datetime


async def find_succeeded(
    reader: RunReader,
    runs: Iterable[RunSpec],
    *,
    settings: OnlyMissing,
    retry: RetrySettings,
    claimed: Collection[str] = (),
    pacers: Pacers | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    now: Now = utc_now,
) -> Search:
    """The runs of ``runs`` that ADF already has a ``Succeeded`` run for since
    ``settings.since``; the runIds in ``claimed`` (runs of this batch, from a resumed report)
    stand for no other run.

    Raises :class:`ApiError` with code ``OnlyMissingFailed`` when a factory cannot be read, and
    :class:`AuthError` when no token can be had.
    """
    # ``is_recovery: false`` without a reference is an ordinary run: ADF's success counts for it
    wanted = [spec for spec in runs if spec.reference_run_id is None and not spec.is_recovery]
    by_factory: dict[_FactoryKey, list[RunSpec]] = {}
    for spec in wanted:
        by_factory.setdefault(_factory_key(spec), []).append(spec)
    reads = PagedReads(reader, retry, pacers or Pacers(sleep=sleep), sleep, now=now)
    search = Search(factories=len(by_factory), searched=len(wanted))
    if not wanted:
        return search
    until = now() + CLOCK_SKEW
    successes: dict[tuple[_FactoryKey, str], list[_Success]] = {}
    slots = asyncio.Semaphore(MISSING_FACTORIES_AT_ONCE)

    async def read(key: _FactoryKey, specs: list[RunSpec]) -> None:
        try:
            for success in await _succeeded_in(reads, specs, since=settings.since, until=until):
                successes.setdefault((key, success.run.pipeline), []).append(success)
        finally:
            slots.release()

    try:
        try:
            async with asyncio.TaskGroup() as tasks:
                for key, specs in by_factory.items():
                    await slots.acquire()
                    tasks.create_task(read(key, specs))
        except* (ApiError, AuthError) as failed:
            raise failed.exceptions[0] from None
    except ApiError as exc:
        raise _search_failed(exc) from exc
    finally:
        search.reads = reads.count
    taken = {claim_key(run_id) for run_id in claimed}
    for found in successes.values():
        found.sort(key=lambda success: success.ended, reverse=True)
    for spec in wanted:
        for success in successes.get((_factory_key(spec), spec.pipeline.casefold()), ()):
            if success.run.claim in taken:
                continue
            if parameters_match(spec.parameters, success.run.parameters):
                taken.add(success.run.claim)
                search.found[spec.id] = AlreadySucceeded(success.run.run_id, success.ended)
                break
    _log.info(
        "only_missing.searched",
        runs=search.searched,
        already_succeeded=len(search.found),
        factories=search.factories,
        reads=search.reads,
        since=utc_iso(settings.since, timespec="seconds"),
    )
    return search


def _factory_key(spec: RunSpec) -> _FactoryKey:
    return (spec.subscription.casefold(), spec.resource_group.casefold(), spec.factory.casefold())


async def _succeeded_in(
    reads: PagedReads, specs: list[RunSpec], *, since: datetime, until: datetime
) -> list[_Success]:
    """The ``Succeeded`` runs of ``specs``' pipelines in their factory that ended since ``since``:
    one paged query, or one per ``MISSING_PIPELINES`` pipelines when there are more."""
    first = specs[0]
    factory = FactoryRef(first.subscription, first.resource_group, first.factory)
    names = list({spec.pipeline.casefold(): spec.pipeline for spec in specs}.values())
    found: list[_Success] = []
    for start in range(0, len(names), MISSING_PIPELINES):
        body: dict[str, Any] = {
            # a run is last updated when it ends: one that ended since ``since`` is in here
            "lastUpdatedAfter": since,
            "lastUpdatedBefore": until,
            "filters": [
                {"operand": "Status", "operator": "Equals", "values": [SUCCEEDED]},
                {
                    "operand": "PipelineName",
                    "operator": "In",
                    "values": names[start : start + MISSING_PIPELINES],
                },
            ],
        }
        rows = await reads.query_all(factory, body, max_pages=MISSING_MAX_PAGES)
        found.extend(_successes(rows, since=since))
    return found


def _successes(rows: Iterable[dict[str, Any]], *, since: datetime) -> Iterable[_Success]:
    for row in rows:
        run = Candidate.from_wire(row)
        ended = parse_time(row.get("runEnd"), naive_is_utc=True)
        # the filters said so; a row that says otherwise is not taken on trust
        if run is None or row.get("status") != SUCCEEDED or ended is None or ended < since:
            continue
        yield _Success(run, ended)


def _search_failed(exc: ApiError) -> ApiError:
    return ApiError(
        status=exc.status,
        code=ONLY_MISSING_FAILED,
        message=(
            f"--only-missing could not ask ADF which runs already succeeded ({exc.code}: "
            f"{exc.message}); nothing was sent, since triggering every run could run twice what "
            "did succeed: retry later, or leave out --only-missing to trigger every run"
        ),
        request_id=exc.request_id,
        transient=False,
        sent=False,
    )
