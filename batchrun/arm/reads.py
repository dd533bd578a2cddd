"""Reading pipeline runs back from ADF: ``queryPipelineRuns`` paged to the end, paced on the
subscription's reads budget, retried by the project's policy.

:class:`PagedReads` waits for its subscription's turn on a :class:`~batchrun.arm.pacing.Pacers`
fed by ``x-ms-ratelimit-remaining-subscription-reads`` (so it slows down before the budget is
spent, and pauses for ``Retry-After`` after a 429) and retries what
:func:`~batchrun.arm.retry.is_transient` calls transient. Following ``continuationToken`` stops with
a ``TooManyPages`` error after ``max_pages`` pages, so a service that never stops paging cannot
keep it busy forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from batchrun.arm.client import QueryResponse, RunReader
from batchrun.arm.retry import RetrySettings, retrying
from batchrun.errors import ApiError, AuthError
from batchrun.log import get_logger
from batchrun.times import Now, parse_time, utc_now

if TYPE_CHECKING:
    from tenacity import RetryCallState

    from batchrun.arm.pacing import Pacers
    from batchrun.model import FactoryRef

RUNNING: Final = frozenset({"Queued", "InProgress", "Canceling"})
# per-group lookups of one factory in flight at once; the reads pacer sets the pace
GROUP_QUERIES_AT_ONCE: Final = 4
# lookups of newer runs reach this far past our clock, so a server clock ahead of ours cannot
# hide a rerun made a moment ago
CLOCK_SKEW: Final = timedelta(hours=1)

_log = get_logger("batchrun.arm.reads")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PipelineRun:
    """A pipeline run as ADF reports it (``queryPipelineRuns``, ``pipelineruns/{runId}``): the
    fields that recovery and the recovery guard look at."""

    run_id: str
    group_id: str
    pipeline: str
    status: str
    is_latest: bool
    run_start: datetime
    message: str = ""

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], *, where: str) -> PipelineRun:
        run_id, pipeline, status = data.get("runId"), data.get("pipelineName"), data.get("status")
        start = parse_time(data.get("runStart"), naive_is_utc=True)
        if not (isinstance(run_id, str) and run_id and isinstance(pipeline, str)):
            raise _invalid(f"{where} answered a run without runId or pipelineName: {data!r:.200}")
        if not isinstance(status, str) or start is None:
            raise _invalid(f"{where} answered run {run_id} without a status or a valid runStart")
        group = data.get("runGroupId")
        return cls(
            run_id=run_id,
            group_id=group if isinstance(group, str) and group else run_id,
            pipeline=pipeline,
            status=status,
            # a missing isLatest means "ask": the group is looked up, never assumed latest
            is_latest=data.get("isLatest") is True,
            run_start=start,
            message=str(data.get("message") or ""),
        )

    @property
    def group_key(self) -> str:
        return self.group_id.lower()


async def latest_runs(
    reads: PagedReads,
    factory: FactoryRef,
    group_ids: list[str],
    *,
    after: datetime,
    before: datetime,
    max_pages: int,
    pipelines: Collection[str] = (),
) -> dict[str, PipelineRun]:
    """The latest run of each group, by lower-cased group id.

    ADF takes one value per ``RunGroupId`` filter (a list is a 400: "does not support and array
    of values", azure-sdk-for-net#22025), so there are two ways to ask, costed in reads: one
    ``RunGroupId Equals`` query per group (G reads), or one ``LatestOnly`` scan of the factory
    over the window (a read per page of latest runs of any group, unknown until done). The scan
    goes first, allowed as many pages as there are groups; the groups it has not seen when that
    budget runs out are asked one by one. So recovery never spends more than twice the cheaper
    way, and on most factories (fewer latest runs in the window than 100 per group) one or a few
    reads. ``pipelines``, when it names one pipeline, narrows the scan to it.
    """
    wanted = {group.lower(): group for group in group_ids}
    latest: dict[str, PipelineRun] = {}

    def keep(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            run = PipelineRun.from_wire(row, where=f"queryPipelineRuns on {factory}")
            known = latest.get(run.group_key)
            if run.group_key in wanted and (
                known is None or (run.run_start, run.run_id) > (known.run_start, known.run_id)
            ):
                latest[run.group_key] = run

    if not wanted:
        return latest
    names = {name.casefold(): name for name in pipelines}
    scan = latest_query(
        after=after, before=before, pipeline=next(iter(names.values())) if len(names) == 1 else None
    )
    rows, complete = await reads.query_some(factory, scan, max_pages=len(wanted))
    keep(rows)
    if complete:
        return latest
    missing = [group for key, group in wanted.items() if key not in latest]
    _log.debug("reads.group_lookups", factory=str(factory), groups=len(missing))
    slots = asyncio.Semaphore(GROUP_QUERIES_AT_ONCE)

    async def ask(group: str) -> None:
        try:
            body = group_query(group, after=after, before=before)
            keep(await reads.query_all(factory, body, max_pages=max_pages))
        finally:
            slots.release()

    try:
        async with asyncio.TaskGroup() as tasks:
            for group in missing:
                await slots.acquire()
                tasks.create_task(ask(group))
    except* (ApiError, AuthError) as failed:
        raise failed.exceptions[0] from None
    return latest


def latest_query(*, after: datetime, before: datetime, pipeline: str | None) -> dict[str, Any]:
    """The latest run of every group updated in the window (of ``pipeline``, when given)."""
    filters: list[dict[str, Any]] = [
        {"operand": "LatestOnly", "operator": "Equals", "values": ["true"]}
    ]
    if pipeline is not None:
        filters.append({"operand": "PipelineName", "operator": "Equals", "values": [pipeline]})
    return {"lastUpdatedAfter": after, "lastUpdatedBefore": before, "filters": filters}


def group_query(group_id: str, *, after: datetime, before: datetime) -> dict[str, Any]:
    """The latest run of one group: ADF accepts a single value for ``RunGroupId``."""
    return {
        "lastUpdatedAfter": after,
        "lastUpdatedBefore": before,
        "filters": [
            {"operand": "RunGroupId", "operator": "Equals", "values": [group_id]},
            {"operand": "LatestOnly", "operator": "Equals", "values": ["true"]},
        ],
    }


class PagedReads:
    """queryPipelineRuns, paced per subscription on the reads budget and retried."""

    def __init__(
        self,
        reader: RunReader,
        retry: RetrySettings,
        pacers: Pacers,
        sleep: Sleep,
        *,
        now: Now = utc_now,
    ) -> None:
        self._reader = reader
        self._retry = retry
        self._pacers = pacers
        self._sleep = sleep
        self._now = now
        self.count = 0
        # reads answered 429: they slow the polling down, they fail nothing
        self.throttled = 0
        # the server's clock minus ours, from the last answer with a Date header: a little low,
        # never high (Date is truncated to the second and read after the answer's travel)
        self.server_offset: timedelta | None = None

    async def query_all(
        self, factory: FactoryRef, body: Mapping[str, Any], *, max_pages: int
    ) -> list[dict[str, Any]]:
        async def page(parameters: Mapping[str, Any]) -> QueryResponse:
            return await self._query(factory, parameters)

        return await all_pages(page, body, max_pages=max_pages, where=str(factory))

    async def query_some(
        self, factory: FactoryRef, body: Mapping[str, Any], *, max_pages: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """At most ``max_pages`` pages: the runs, and whether they are all there are."""

        async def page(parameters: Mapping[str, Any]) -> QueryResponse:
            return await self._query(factory, parameters)

        return await some_pages(page, body, max_pages=max_pages)

    async def _query(self, factory: FactoryRef, body: Mapping[str, Any]) -> QueryResponse:
        pacer = self._pacers[factory.subscription]
        async for attempt in retrying(self._retry, sleep=self._sleep, before_sleep=_log_retry):
            with attempt:
                await pacer.acquire()
                self.count += 1
                try:
                    page = await self._reader.query_pipeline_runs(
                        subscription=factory.subscription,
                        resource_group=factory.resource_group,
                        factory=factory.factory,
                        filter_parameters=body,
                    )
                except ApiError as exc:
                    self.throttled += exc.status == 429
                    pacer.failed(exc)
                    raise
                except AuthError:
                    pacer.abandoned()
                    raise
                pacer.completed(page.limits.remaining_reads)
                if page.server_date is not None:
                    self.server_offset = page.server_date - self._now()
                return page
        raise AssertionError("retrying() reraises")  # pragma: no cover


Page = Callable[[Mapping[str, Any]], Awaitable[QueryResponse]]


async def some_pages(
    page: Page, body: Mapping[str, Any], *, max_pages: int
) -> tuple[list[dict[str, Any]], bool]:
    """Follow ``continuationToken`` for at most ``max_pages`` pages: the runs, and whether the
    last page said there were no more."""
    rows: list[dict[str, Any]] = []
    parameters = dict(body)
    for _ in range(max_pages):
        answer = await page(parameters)
        rows.extend(answer.value)
        if answer.continuation_token is None:
            return rows, True
        parameters["continuationToken"] = answer.continuation_token
    return rows, False


async def all_pages(
    page: Page, body: Mapping[str, Any], *, max_pages: int, where: str
) -> list[dict[str, Any]]:
    rows, complete = await some_pages(page, body, max_pages=max_pages)
    if complete:
        return rows
    raise ApiError(
        status=None,
        code="TooManyPages",
        message=(
            f"queryPipelineRuns on {where} still had more after {max_pages} pages "
            f"({len(rows)} runs); narrow the window (--since/--until) or --pipeline"
        ),
        transient=False,
        sent=False,
    )


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, ApiError):
        _log.debug("reads.retry", attempt=state.attempt_number, status=exc.status, code=exc.code)


def _invalid(message: str) -> ApiError:
    return ApiError(status=200, code="InvalidResponse", message=message, transient=False)
