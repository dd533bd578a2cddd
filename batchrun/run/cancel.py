"""Cancelling runs in bulk: the runs of a report, or those a scope and a window find; paced.

Which runs: for ``batchrun cancel REPORT``, every run whose trigger succeeded and whose end no
line tells yet, as ADF sees it now (one ``queryPipelineRuns`` per factory, paged): only those
``Queued`` or ``InProgress`` are cancelled. For ``--scope``, the runs of the scope's factories
that started inside the window, of the given statuses (``Queued``, ``InProgress`` by default)
and pipelines (globs). Each cancel waits on its subscription's writes pacer and is retried like
any write; a run that ended in the meantime (ADF answers 400) is counted, not failed.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from batchrun.arm.client import RunReader
from batchrun.arm.pacing import Pacers
from batchrun.arm.reads import CLOCK_SKEW, PagedReads
from batchrun.arm.retry import RetrySettings, retrying
from batchrun.errors import ApiError
from batchrun.log import get_logger
from batchrun.times import parse_time

if TYPE_CHECKING:
    from batchrun.arm.ratelimit import RateLimits
    from batchrun.model import FactoryRef
    from batchrun.run.outcome import Followed

_log = get_logger("batchrun.run.cancel")

Sleep = Callable[[float], Awaitable[None]]
Answer = Literal["requested", "not_running", "failed"]
CANCELLABLE: Final = ("Queued", "InProgress")
MAX_PAGES: Final = 1000
_OVERLAP: Final = timedelta(seconds=60)


class CancelClient(Protocol):
    async def cancel_pipeline_run(
        self,
        *,
        subscription: str,
        resource_group: str,
        factory: str,
        run_id: str,
        is_recursive: bool = False,
    ) -> RateLimits: ...


class BulkClient(RunReader, CancelClient, Protocol):
    """What bulk cancel needs of the ADF client."""


@dataclass(frozen=True, slots=True)
class Target:
    """A run to cancel, as ADF showed it."""

    factory: FactoryRef
    pipeline: str
    run_id: str
    status: str
    run_start: datetime | None
    id: str | None = None  # the report's id, when it came from a report

    def describe(self) -> str:
        start = "" if self.run_start is None else f"{self.run_start:%Y-%m-%dT%H:%M:%SZ}"
        name = f"{self.id}  " if self.id else ""
        return (
            f"{name}{self.factory.factory}/{self.pipeline}  {self.run_id}  {self.status}  {start}"
        )


@dataclass(frozen=True, slots=True)
class CancelResult:
    requested: int
    not_running: int
    failed: list[tuple[Target, str]] = field(default_factory=list)


async def cancel_paced(
    client: CancelClient,
    pacers: Pacers,
    *,
    factory: FactoryRef,
    run_id: str,
    recursive: bool,
    retry: RetrySettings,
    sleep: Sleep,
) -> tuple[Answer, str | None]:
    """Cancel one run on its subscription's writes budget: the answer, and the error if any."""
    pacer = pacers[factory.subscription]
    try:
        async for attempt in retrying(retry, sleep=sleep):
            with attempt:
                await pacer.acquire()
                try:
                    limits = await client.cancel_pipeline_run(
                        subscription=factory.subscription,
                        resource_group=factory.resource_group,
                        factory=factory.factory,
                        run_id=run_id,
                        is_recursive=recursive,
                    )
                except ApiError as exc:
                    pacer.failed(exc)
                    raise
                pacer.completed(limits.remaining_writes)
                return "requested", None
    except ApiError as exc:
        if exc.status in (401, 403):
            raise
        if exc.status == 400:
            # ADF's answer for a run that already finished (PipelineRunNotRunning or similar)
            return "not_running", f"{exc.code}: {exc.message}"
        _log.warning("cancel.failed", run_id=run_id, status=exc.status, code=exc.code)
        return "failed", f"{exc.code}: {exc.message}"
    raise AssertionError("retrying() reraises")  # pragma: no cover


async def cancel_all(
    client: CancelClient,
    targets: Sequence[Target],
    *,
    recursive: bool,
    retry: RetrySettings,
    concurrency: int,
    pacers: Pacers | None = None,
    sleep: Sleep = asyncio.sleep,
) -> CancelResult:
    pacers = pacers or Pacers(sleep=sleep)
    limit = asyncio.Semaphore(concurrency)
    answers: list[tuple[Target, Answer, str | None]] = []

    async def one(target: Target) -> None:
        async with limit:
            answer, error = await cancel_paced(
                client,
                pacers,
                factory=target.factory,
                run_id=target.run_id,
                recursive=recursive,
                retry=retry,
                sleep=sleep,
            )
            answers.append((target, answer, error))

    await asyncio.gather(*(one(target) for target in targets))
    return CancelResult(
        requested=sum(1 for _, answer, _ in answers if answer == "requested"),
        not_running=sum(1 for _, answer, _ in answers if answer == "not_running"),
        failed=[(t, error or "") for t, answer, error in answers if answer == "failed"],
    )


async def report_targets(
    reader: RunReader,
    runs: Iterable[Followed],
    *,
    now: datetime,
    retry: RetrySettings,
    sleep: Sleep = asyncio.sleep,
) -> list[Target]:
    """The followed runs of a report that ADF shows Queued or InProgress now."""
    by_factory: dict[tuple[str, str, str], list[Followed]] = {}
    for run in runs:
        by_factory.setdefault(run.factory.key, []).append(run)
    reads = PagedReads(reader, retry, Pacers(sleep=sleep), sleep)
    targets: list[Target] = []
    for group in by_factory.values():
        wanted = {run.key: run for run in group}
        factory = group[0].factory
        body = {
            "lastUpdatedAfter": min(run.sent_at for run in group) - _OVERLAP,
            "lastUpdatedBefore": now + CLOCK_SKEW,
            "filters": [_status_filter(CANCELLABLE)],
        }
        for row in await reads.query_all(factory, body, max_pages=MAX_PAGES):
            match = wanted.get(str(row.get("runId", "")).lower())
            if match is not None:
                targets.append(_target(factory, row, id_=match.id))
    return targets


async def scope_targets(
    reader: RunReader,
    factories: Iterable[FactoryRef],
    *,
    since: datetime,
    until: datetime,
    statuses: Sequence[str],
    pipelines: Sequence[str],
    now: datetime,
    retry: RetrySettings,
    sleep: Sleep = asyncio.sleep,
) -> list[Target]:
    """The runs of ``factories`` that started in ``[since, until)``, of ``statuses`` and of
    pipelines matching one of ``pipelines`` (globs, case-insensitive; empty: all)."""
    reads = PagedReads(reader, retry, Pacers(sleep=sleep), sleep)
    targets: list[Target] = []
    for factory in factories:
        # a run still running was updated at or after its start: the window starts there
        body = {
            "lastUpdatedAfter": since,
            "lastUpdatedBefore": now + CLOCK_SKEW,
            "filters": [_status_filter(statuses)],
        }
        for row in await reads.query_all(factory, body, max_pages=MAX_PAGES):
            target = _target(factory, row, id_=None)
            if target.run_start is None or not since <= target.run_start < until:
                continue
            if pipelines and not any(_matches(target.pipeline, glob) for glob in pipelines):
                continue
            targets.append(target)
    return targets


def _status_filter(statuses: Sequence[str]) -> dict[str, Any]:
    return {"operand": "Status", "operator": "In", "values": list(statuses)}


def _matches(name: str, glob: str) -> bool:
    return fnmatch.fnmatchcase(name.casefold(), glob.casefold())


def _target(factory: FactoryRef, row: Mapping[str, Any], *, id_: str | None) -> Target:
    return Target(
        factory=factory,
        pipeline=str(row.get("pipelineName") or ""),
        run_id=str(row.get("runId") or ""),
        status=str(row.get("status") or ""),
        run_start=parse_time(row.get("runStart"), naive_is_utc=True),
        id=id_,
    )
