"""Following triggered runs to their end: one ``queryPipelineRuns`` per factory per poll.

Each poll asks every factory once (paged by ``continuationToken``) for the runs whose
``lastUpdated`` falls after the previous poll of that factory, less :data:`OVERLAP` for updates
that reach ADF's monitoring store late. A run that did not change is not read again; a run that
ended ``Failed`` costs one ``queryActivityruns`` for its failure. Reads wait on the subscription's
reads pacer (``x-ms-ratelimit-remaining-subscription-reads``, and ``-global-reads``); a read that
still fails after the retry policy (a 429 storm, a 5xx) only makes that factory wait for the next
poll with the same window, never fails a run.

The interval adapts: a tenth of the youngest unfinished run's age, at least
:data:`MIN_INTERVAL_S`, at most ``poll_s``, and never so short that a factory's pages would break
ADF's 1,000 monitoring queries a minute. Every :data:`SWEEP_EVERY_S` the window goes back to
the oldest run still followed, so an update ADF indexed later than :data:`OVERLAP` is still seen.

Runs may be added while it follows (:meth:`Monitor.add`, the dependency driver's runs as each is
triggered): it then follows until :meth:`Monitor.close` says no more will come and the runs it
has have ended; ``on_end`` hears of each run that ended (or timed out) once its line is written.

Timeouts count from a run's trigger; with ``on_timeout="cancel"`` the run is cancelled (paced on
the writes budget) and followed until ADF says ``Cancelled`` (at most :data:`CANCEL_WAIT_S`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from batchrun.arm.client import QueryResponse, RunReader
from batchrun.arm.pacing import Pacers
from batchrun.arm.reads import CLOCK_SKEW, PagedReads, all_pages
from batchrun.arm.retry import retrying
from batchrun.errors import ApiError
from batchrun.log import get_logger
from batchrun.run.cancel import CancelClient, cancel_paced
from batchrun.run.outcome import (
    FAILED,
    TIMED_OUT,
    Followed,
    failure_from_run,
    first_activity_start,
    first_failure,
    outcome_record,
    terminal,
)
from batchrun.times import Now, parse_time
from batchrun.waits import first_of

if TYPE_CHECKING:
    from batchrun.model import FactoryRef
    from batchrun.run.following import FollowSettings
    from batchrun.run.progress import FollowProgress

_log = get_logger("batchrun.run.monitor")

Sleep = Callable[[float], Awaitable[None]]

# ADF's monitoring store may show an update a little after its lastUpdated; the window reaches
# back this far behind the previous poll (the periodic sweep catches anything later still)
OVERLAP: Final = timedelta(seconds=15)
MIN_INTERVAL_S: Final = 1.0
# ADF: 1,000 monitoring queries a minute per factory; keep a fifth of it for everyone else
_QUERY_SPACING_S: Final = 60 / 800
SWEEP_EVERY_S: Final = 600.0
CANCEL_WAIT_S: Final = 600.0
MAX_PAGES: Final = 1000
# a PipelineName filter keeps other pipelines' runs out of the pages; past this many names the
# body grows more than it saves
_NAME_FILTER_MAX: Final = 100
# ADF answers a read about an unknown or vanished run like this: do not retry those
_ACTIVITY_WINDOW: Final = timedelta(days=1)


class FollowClient(RunReader, CancelClient, Protocol):
    """What following needs of the ADF client (:class:`~batchrun.arm.client.AdfClient`)."""

    async def query_activity_runs(
        self,
        *,
        subscription: str,
        resource_group: str,
        factory: str,
        run_id: str,
        filter_parameters: Mapping[str, Any],
    ) -> QueryResponse: ...


class LineSink(Protocol):
    """Where outcome lines go: the report (:class:`~batchrun.report.writer.AppendOnlyJsonl`)."""

    # what it returns (the file's, the line it wrote) is not the monitor's business
    def append(self, record: dict[str, Any]) -> object: ...


@dataclass(frozen=True, slots=True)
class FollowResult:
    outcomes: Mapping[str, int]
    unfinished: int
    """Runs still followed when it stopped (a signal, or ``max_follow_s``)."""
    polls: int
    reads: int
    read_failures: int


@dataclass(slots=True)
class _Tracked:
    followed: Followed
    status: str | None = None
    last: dict[str, Any] | None = None
    running_since: datetime | None = None
    cancel_sent: datetime | None = None


@dataclass(slots=True)
class _Factory:
    ref: FactoryRef
    runs: dict[str, _Tracked] = field(default_factory=dict)  # by lower-case ADF run id
    after: datetime | None = None
    pages: int = 0


class Monitor:
    """Follows runs to their end and appends an outcome line for each to the report."""

    def __init__(
        self,
        *,
        client: FollowClient,
        sink: LineSink,
        settings: FollowSettings,
        progress: FollowProgress,
        now: Now,
        sleep: Sleep = asyncio.sleep,
        read_pacers: Pacers | None = None,
        write_pacers: Pacers | None = None,
        on_end: Callable[[Followed, str], None] | None = None,
    ) -> None:
        self._client = client
        self.on_end = on_end
        """Told of each run that ended (or timed out), once its line is written."""
        self._sink = sink
        self._settings = settings
        self._progress = progress
        self._now = now
        self._sleep = sleep
        self._read_pacers = read_pacers or Pacers(sleep=sleep)
        self._write_pacers = write_pacers or Pacers(sleep=sleep)
        self._reads = PagedReads(client, settings.retry, self._read_pacers, sleep)
        self._stopping = asyncio.Event()
        self._outcomes: Counter[str] = Counter()
        self._read_failures = 0
        self._polls = 0
        self._factories: dict[tuple[str, str, str], _Factory] = {}
        self._feed_closed = False
        self._added = asyncio.Event()

    def stop(self) -> None:
        """Stop following after the reads in flight; what ended is already in the report."""
        self._stopping.set()

    def add(self, followed: Followed) -> None:
        """One more run to follow, from its next poll (before or while :meth:`follow` runs)."""
        entry = self._factories.setdefault(followed.factory.key, _Factory(followed.factory))
        if followed.key in entry.runs:
            return  # already followed: one outcome line per run
        entry.runs[followed.key] = _Tracked(followed)
        self._progress.total += 1
        self._progress.statuses["Queued"] += 1
        self._added.set()

    def close(self) -> None:
        """No more runs will be added: :meth:`follow` ends once those it has have ended."""
        self._feed_closed = True
        self._added.set()

    async def follow(self, runs: list[Followed], *, open_feed: bool = False) -> FollowResult:
        """Follow ``runs`` to their end. With ``open_feed``, :meth:`add` brings more while it
        follows, and it ends only after :meth:`close` (or :meth:`stop`)."""
        for followed in runs:
            self.add(followed)
        factories = self._factories
        started = self._now()
        last_sweep = started
        while (self._pending(factories) or self._more_to_come(open_feed)) and not (
            self._stopping.is_set()
        ):
            if not self._pending(factories):
                await self._until_added()
                continue
            now = self._now()
            if (now - started).total_seconds() > self._settings.max_follow_s:
                _log.warning("follow.gave_up", after_s=self._settings.max_follow_s)
                break
            sweep = (now - last_sweep).total_seconds() >= SWEEP_EVERY_S
            if sweep:
                last_sweep = now
            await self._poll(factories, sweep=sweep)
            await self._timeouts(factories)
            if not self._pending(factories):
                continue  # ended, or waits for more
            await self._pause(self._interval(factories))
        return FollowResult(
            outcomes=dict(self._outcomes),
            unfinished=self._pending(factories),
            polls=self._polls,
            reads=self._reads.count + self._progress.activity_reads,
            read_failures=self._read_failures,
        )

    def _more_to_come(self, open_feed: bool) -> bool:
        return open_feed and not self._feed_closed

    async def _until_added(self) -> None:
        """While nothing is followed: until a run is added, the feed closes, or a stop."""
        if self._added.is_set():
            self._added.clear()  # an add since the last wait: look again before waiting
            return
        await first_of(self._stopping.wait(), self._added.wait())

    @staticmethod
    def _pending(factories: Mapping[Any, _Factory]) -> int:
        return sum(len(entry.runs) for entry in factories.values())

    # --- polling -------------------------------------------------------------------------------

    async def _poll(self, factories: Mapping[Any, _Factory], *, sweep: bool) -> None:
        self._polls += 1
        self._progress.polls = self._polls
        limit = asyncio.Semaphore(self._settings.concurrency)

        async def one(entry: _Factory) -> None:
            async with limit:
                await self._poll_factory(entry, sweep=sweep)

        await asyncio.gather(*(one(entry) for entry in factories.values() if entry.runs))
        self._progress.reads = self._reads.count + self._progress.activity_reads
        self._progress.throttled = self._reads.throttled

    async def _poll_factory(self, entry: _Factory, *, sweep: bool) -> None:
        polled_at = self._now()
        oldest = min(t.followed.sent_at for t in entry.runs.values()) - OVERLAP
        after = oldest if entry.after is None or sweep else max(entry.after, oldest)
        body: dict[str, Any] = {
            "lastUpdatedAfter": after,
            # a server clock ahead of ours must not hide an update made a moment ago
            "lastUpdatedBefore": polled_at + CLOCK_SKEW,
        }
        names = sorted({t.followed.pipeline for t in entry.runs.values()})
        if len(names) <= _NAME_FILTER_MAX:
            body["filters"] = [{"operand": "PipelineName", "operator": "In", "values": names}]
        count_before = self._reads.count
        try:
            rows = await self._reads.query_all(entry.ref, body, max_pages=MAX_PAGES)
        except ApiError as exc:
            if exc.status in (401, 403):
                raise
            # the window stays where it was: the next poll asks for the same updates again
            self._read_failures += 1
            _log.warning(
                "follow.read_failed", factory=str(entry.ref), status=exc.status, code=exc.code
            )
            return
        entry.pages = self._reads.count - count_before
        entry.after = polled_at - OVERLAP
        ended: list[tuple[_Tracked, str]] = []
        for row in rows:
            run_id = row.get("runId")
            tracked = entry.runs.get(run_id.lower()) if isinstance(run_id, str) else None
            if tracked is None:
                continue
            outcome = self._observe(tracked, row)
            if outcome is not None:
                ended.append((tracked, outcome))
        for tracked, outcome in ended:
            await self._finish(entry, tracked, outcome)

    def _observe(self, tracked: _Tracked, row: dict[str, Any]) -> str | None:
        """Take in a fresher PipelineRun; its outcome when it has ended."""
        updated = parse_time(row.get("lastUpdated"), naive_is_utc=True)
        known = parse_time((tracked.last or {}).get("lastUpdated"), naive_is_utc=True)
        if known is not None and updated is not None and updated < known:
            return None  # an older page of the overlap: what we hold is newer
        status = row.get("status") if isinstance(row.get("status"), str) else None
        self._count(tracked.status, status)
        tracked.status = status
        tracked.last = row
        if status in ("InProgress", "Canceling") and tracked.running_since is None:
            tracked.running_since = updated
        return terminal(status)

    def _count(self, old: str | None, new: str | None) -> None:
        statuses = self._progress.statuses
        statuses[old or "Queued"] -= 1
        statuses[new or "Queued"] += 1

    async def _finish(self, entry: _Factory, tracked: _Tracked, outcome: str) -> None:
        failure = None
        running_since = tracked.running_since
        if outcome == FAILED:
            activities = await self._activities(entry.ref, tracked)
            if activities is None:
                failure = failure_from_run((tracked.last or {}).get("message"))
            else:
                failure = first_failure(activities) or failure_from_run(
                    (tracked.last or {}).get("message")
                )
                running_since = first_activity_start(activities) or running_since
        if tracked.cancel_sent is not None and outcome == "Cancelled":
            outcome = TIMED_OUT  # we cancelled it because its time was up
        self._write(entry, tracked, outcome, running_since=running_since, failure=failure)

    def _write(
        self,
        entry: _Factory,
        tracked: _Tracked,
        outcome: str,
        *,
        running_since: datetime | None,
        failure: dict[str, Any] | None = None,
    ) -> None:
        del entry.runs[tracked.followed.key]
        self._outcomes[outcome] += 1
        if outcome == TIMED_OUT and terminal(tracked.status) is None:
            self._count(tracked.status, TIMED_OUT)
            if tracked.followed.timed_out:
                self._ended(tracked.followed, outcome)
                return  # its last line says so already
        self._sink.append(
            outcome_record(
                tracked.followed,
                outcome=outcome,
                run=tracked.last,
                running_since=running_since,
                failure=failure,
            )
        )
        self._progress.done += 1
        self._ended(tracked.followed, outcome)

    def _ended(self, followed: Followed, outcome: str) -> None:
        if self.on_end is not None:
            self.on_end(followed, outcome)

    async def _activities(
        self, factory: FactoryRef, tracked: _Tracked
    ) -> list[dict[str, Any]] | None:
        followed = tracked.followed
        now = self._now()
        body = {
            "lastUpdatedAfter": followed.sent_at - _ACTIVITY_WINDOW,
            "lastUpdatedBefore": now + CLOCK_SKEW,
        }
        pacer = self._read_pacers[factory.subscription]

        async def page(parameters: Mapping[str, Any]) -> QueryResponse:
            async for attempt in retrying(self._settings.retry, sleep=self._sleep):
                with attempt:
                    await pacer.acquire()
                    self._progress.activity_reads += 1
                    try:
                        answer = await self._client.query_activity_runs(
                            subscription=factory.subscription,
                            resource_group=factory.resource_group,
                            factory=factory.factory,
                            run_id=followed.run_id,
                            filter_parameters=parameters,
                        )
                    except ApiError as exc:
                        pacer.failed(exc)
                        raise
                    pacer.completed(answer.limits.remaining_reads)
                    return answer
            raise AssertionError("retrying() reraises")  # pragma: no cover

        try:
            return await all_pages(page, body, max_pages=MAX_PAGES, where=followed.run_id)
        except ApiError as exc:
            if exc.status in (401, 403):
                raise
            _log.warning("follow.activities_failed", id=followed.id, code=exc.code)
            return None

    # --- timeouts ------------------------------------------------------------------------------

    async def _timeouts(self, factories: Mapping[Any, _Factory]) -> None:
        limit = self._settings.timeout_s
        if limit is None:
            return
        now = self._now()
        due: list[tuple[_Factory, _Tracked]] = [
            (entry, tracked)
            for entry in factories.values()
            for tracked in entry.runs.values()
            if (now - tracked.followed.triggered_at).total_seconds() >= limit
        ]
        for entry, tracked in due:
            if self._settings.on_timeout == "report":
                self._write(entry, tracked, TIMED_OUT, running_since=tracked.running_since)
            elif tracked.cancel_sent is None:
                tracked.cancel_sent = now
                await cancel_paced(
                    self._client,
                    self._write_pacers,
                    factory=entry.ref,
                    run_id=tracked.followed.run_id,
                    recursive=True,
                    retry=self._settings.retry,
                    sleep=self._sleep,
                )
            elif (now - tracked.cancel_sent).total_seconds() >= CANCEL_WAIT_S:
                self._write(entry, tracked, TIMED_OUT, running_since=tracked.running_since)

    # --- pacing --------------------------------------------------------------------------------

    def _interval(self, factories: Mapping[Any, _Factory]) -> float:
        now = self._now()
        poll_s = self._settings.poll_s
        tracked = [t for entry in factories.values() for t in entry.runs.values()]
        youngest = min((now - t.followed.triggered_at).total_seconds() for t in tracked)
        interval = min(poll_s, max(MIN_INTERVAL_S, youngest / 10))
        pages = max((entry.pages for entry in factories.values()), default=0)
        interval = max(interval, pages * _QUERY_SPACING_S)
        limit = self._settings.timeout_s
        if limit is not None:
            # wake for the next timeout rather than a poll later
            soonest = min(limit - (now - t.followed.triggered_at).total_seconds() for t in tracked)
            interval = min(interval, max(soonest, 0.05))
        return interval

    async def _pause(self, seconds: float) -> None:
        await first_of(self._stopping.wait(), self._sleep(seconds))
