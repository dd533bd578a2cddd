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

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from tenacity import RetryCallState

from batchrun.arm.client import QueryResponse, RunReader
from batchrun.arm.pacing import Pacers
from batchrun.arm.retry import RetrySettings, retrying
from batchrun.errors import ApiError, AuthError
from batchrun.log import get_logger
from batchrun.model import FactoryRef
from batchrun.times import parse_time

RUNNING: Final = frozenset({"Queued", "InProgress", "Canceling"})
GROUPS_PER_QUERY: Final = 50
# lookups of newer runs reach this far past our clock, so a server clock ahead of ours cannot
# hide a rerun made a moment ago
CLOCK_SKEW: Final = timedelta(hours=1)

_log = get_logger("batchrun.arm.reads")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """The fields of a PipelineRun that recovery looks at."""

    run_id: str
    group_id: str
    pipeline: str
    status: str
    is_latest: bool
    run_start: datetime
    message: str = ""

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], *, where: str) -> RunRecord:
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
) -> dict[str, RunRecord]:
    """The latest run of each group, by lower-cased group id."""
    latest: dict[str, RunRecord] = {}
    for start in range(0, len(group_ids), GROUPS_PER_QUERY):
        batch = group_ids[start : start + GROUPS_PER_QUERY]
        body = group_query(batch, after=after, before=before)
        for row in await reads.query_all(factory, body, max_pages=max_pages):
            run = RunRecord.from_wire(row, where=f"queryPipelineRuns on {factory}")
            known = latest.get(run.group_key)
            if known is None or (run.run_start, run.run_id) > (known.run_start, known.run_id):
                latest[run.group_key] = run
    return latest


def group_query(group_ids: list[str], *, after: datetime, before: datetime) -> dict[str, Any]:
    return {
        "lastUpdatedAfter": after,
        "lastUpdatedBefore": before,
        "filters": [
            {"operand": "RunGroupId", "operator": "In", "values": group_ids},
            {"operand": "LatestOnly", "operator": "Equals", "values": ["true"]},
        ],
    }


class PagedReads:
    """queryPipelineRuns, paced per subscription on the reads budget and retried."""

    def __init__(
        self, reader: RunReader, retry: RetrySettings, pacers: Pacers, sleep: Sleep
    ) -> None:
        self._reader = reader
        self._retry = retry
        self._pacers = pacers
        self._sleep = sleep
        self.count = 0

    async def query_all(
        self, factory: FactoryRef, body: Mapping[str, Any], *, max_pages: int
    ) -> list[dict[str, Any]]:
        async def page(parameters: Mapping[str, Any]) -> QueryResponse:
            return await self._query(factory, parameters)

        return await all_pages(page, body, max_pages=max_pages, where=str(factory))

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
                    if exc.status == 429:
                        pacer.throttled_for(exc.retry_after)
                    else:
                        pacer.abandoned()
                    raise
                except AuthError:
                    pacer.abandoned()
                    raise
                pacer.completed(page.limits.remaining_reads)
                return page
        raise AssertionError("retrying() reraises")  # pragma: no cover


async def all_pages(
    page: Callable[[Mapping[str, Any]], Awaitable[QueryResponse]],
    body: Mapping[str, Any],
    *,
    max_pages: int,
    where: str,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    parameters = dict(body)
    for _ in range(max_pages):
        answer = await page(parameters)
        rows.extend(answer.value)
        if answer.continuation_token is None:
            return rows
        parameters["continuationToken"] = answer.continuation_token
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
