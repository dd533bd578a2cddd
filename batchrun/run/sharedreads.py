"""One ``queryPipelineRuns`` per poll for every run waiting on the same pipeline.

Reconciliation used to ask ADF once per waiting run, so a wave of lost answers cost a read per
run per look and could spend the reads budget that ``--wait`` needs. Here the runs waiting on one
factory and pipeline (and, for recoveries, one run group) share a *channel*: a look is a poll of
the channel, sent at most once per ``min_gap_s``; a run that wants a look joins the poll in flight
when it was sent late enough and reaches back far enough, or the next one. Every poll reaches back
to the earliest first attempt of the runs waiting on it, pages to the end, and is paced on the
reads budget (:class:`~batchrun.arm.reads.PagedReads`). Its answer is parsed once; each waiting
run then matches it with the claim rules of :mod:`batchrun.run.reconcile`.

The polls also feed :class:`~batchrun.run.visibility.VisibilityLag`: they list the runs this batch
created, which is how long ADF takes to show a run is measured.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from batchrun.model import FactoryRef, RunSpec
from batchrun.run.constants import RECONCILE_MAX_PAGES
from batchrun.times import parse_time

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from batchrun.arm.reads import PagedReads
    from batchrun.run.visibility import SampleKey, VisibilityLag

# How far before our first attempt (in server time) a run may have started and still be ours.
# The server's clock is read from Date, which is truncated to the second and read after the
# answer travelled, so the estimate is already low; this covers ADF stamping runStart on another
# machine than the one that wrote Date (hosts are NTP-synced to well under a second) and a step
# of our own clock between the attempt and the look. A few seconds: a foreign manual run would
# have to start inside them, with our pipeline and parameters, to be taken for ours.
MARGIN = timedelta(seconds=5)
# With no server clock measured yet the first query is this wide; its Date then narrows it.
UNMEASURED = timedelta(hours=1)
# a channel's polls wait for one in flight that cannot serve them at most this many times
_MAX_TURNS = 1000
_NEVER = datetime.max.replace(tzinfo=UTC)

# subscription, resource group, factory, pipeline as the entry spells them, and the run group
# a recovery is looked for in ("" for none)
ChannelKey = tuple[str, str, str, str, str]


def channel_key(spec: RunSpec, group: str | None) -> ChannelKey:
    return (spec.subscription, spec.resource_group, spec.factory, spec.pipeline, group or "")


def sample_key(spec: RunSpec) -> SampleKey:
    return (
        spec.subscription.casefold(),
        spec.resource_group.casefold(),
        spec.factory.casefold(),
        spec.pipeline.casefold(),
    )


def claim_key(run_id: str) -> int | str:
    """How a claimed runId is kept: a GUID (every runId ADF makes) as its 128-bit number, half
    the memory of its text across 100,000 runs, and the same whatever its case."""
    if len(run_id) == 36 and run_id.count("-") == 4:
        try:
            return int(run_id.replace("-", ""), 16)
        except ValueError:
            pass
    return run_id


@dataclass(frozen=True, slots=True)
class Candidate:
    """A run as reconciliation judges it, parsed once per poll for every waiting run."""

    run_id: str
    claim: int | str
    """:func:`claim_key` of ``run_id``"""
    pipeline: str
    """casefolded: ADF answers with its own spelling"""
    manual: bool
    started: datetime | None
    group: str
    """lower-cased"""
    parameters: Mapping[str, Any]

    @classmethod
    def from_wire(cls, row: Mapping[str, Any]) -> Candidate | None:
        run_id, name = row.get("runId"), row.get("pipelineName")
        if not isinstance(run_id, str) or not isinstance(name, str):
            return None
        invoked = row.get("invokedBy") or {}
        return cls(
            run_id=run_id,
            claim=claim_key(run_id),
            pipeline=name.casefold(),
            manual=invoked.get("invokedByType", invoked.get("name")) == "Manual",
            started=parse_time(row.get("runStart"), naive_is_utc=True),
            group=str(row.get("runGroupId") or "").lower(),
            parameters=row.get("parameters") or {},
        )


@dataclass(frozen=True, slots=True)
class Poll:
    """One shared look: when it was sent, how far back it reached (our clock), what it listed."""

    sent: float
    since: datetime
    runs: list[Candidate]


@dataclass(slots=True)
class _Channel:
    waiting: dict[int, tuple[datetime, float]] = field(default_factory=dict)
    running: asyncio.Task[Poll] | None = None
    running_sent: float = 0.0
    running_since: datetime = _NEVER
    last: Poll | None = None


class SharedReads:
    """The channels of one batch: who waits on what, and the polls they share."""

    def __init__(
        self,
        *,
        reads: PagedReads,
        lag: VisibilityLag,
        min_gap_s: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._reads = reads
        self._lag = lag
        self._min_gap = min_gap_s
        self._clock = clock
        self._sleep = sleep
        self._channels: dict[ChannelKey, _Channel] = {}
        self._tokens = itertools.count()
        self.polls = 0

    def server_time(self, moment: datetime) -> datetime | None:
        """``moment`` of our clock on the server's clock, if the server's was measured."""
        offset = self._reads.server_offset
        return None if offset is None else moment + offset

    def enter(self, key: ChannelKey, since: datetime) -> int:
        """A run starts waiting on ``key``; polls reach back to ``since`` while it waits."""
        token = next(self._tokens)
        # how far back the polls list every run, on the monotonic clock samples are timed by:
        # they reach MARGIN before ``since`` on a server clock estimated low, less a second for
        # a step of our own clock
        reach = MARGIN - timedelta(seconds=1)
        on_clock = self._clock() - (datetime.now(UTC) - since + reach).total_seconds()
        self._channels.setdefault(key, _Channel()).waiting[token] = (since, on_clock)
        return token

    def leave(self, key: ChannelKey, token: int) -> None:
        channel = self._channels.get(key)
        if channel is None:
            return
        channel.waiting.pop(token, None)
        if not channel.waiting and channel.running is None:
            # nobody left to serve: the last answer's runs need not stay in memory
            del self._channels[key]

    async def poll(
        self, key: ChannelKey, spec: RunSpec, *, since: datetime, not_before: float
    ) -> Poll:
        """A poll of ``key`` sent at ``not_before`` or later that reaches back to ``since``: one
        already answered, the one in flight, or a new one (no sooner than ``min_gap_s`` after
        the last)."""
        channel = self._channels[key]
        for _ in range(_MAX_TURNS):
            last, running = channel.last, channel.running
            if last is not None and last.sent >= not_before and last.since <= since:
                return last
            if running is not None:
                if channel.running_sent >= not_before and channel.running_since <= since:
                    return await asyncio.shield(running)
                await asyncio.wait([running])
                continue
            if last is not None:
                gap = last.sent + self._min_gap - self._clock()
                if gap > 0:
                    await self._sleep(gap)
                    continue
            return await asyncio.shield(self._start(key, channel, spec))
        raise AssertionError(f"no poll of {key} could serve a waiting run")  # pragma: no cover

    def _start(self, key: ChannelKey, channel: _Channel, spec: RunSpec) -> asyncio.Task[Poll]:
        sent = self._clock()
        since = min(since for since, _ in channel.waiting.values())
        covers_from = min(on_clock for _, on_clock in channel.waiting.values())
        task = asyncio.create_task(
            self._read(key, spec, since=since, sent=sent, covers_from=covers_from)
        )
        channel.running, channel.running_sent, channel.running_since = task, sent, since

        def done(finished: asyncio.Task[Poll]) -> None:
            channel.running = None
            if not finished.cancelled() and finished.exception() is None:
                channel.last = finished.result()
            if not channel.waiting and self._channels.get(key) is channel:
                del self._channels[key]

        task.add_done_callback(done)
        return task

    async def _read(
        self, key: ChannelKey, spec: RunSpec, *, since: datetime, sent: float, covers_from: float
    ) -> Poll:
        self.polls += 1
        group = key[4] or None
        measured = self.server_time(since) is not None
        rows = await self._query(spec, since, group)
        if not measured and not self._covered(since):
            # the first answer showed the server's clock far from ours: ask in its time
            rows = await self._query(spec, since, group)
        runs = [run for run in map(Candidate.from_wire, rows) if run is not None]
        if group is None:
            self._lag.read(
                sample_key(spec),
                [run.run_id for run in runs],
                sent=sent,
                answered=self._clock(),
                covers_from=covers_from,
            )
        return Poll(sent=sent, since=since, runs=runs)

    def _covered(self, since: datetime) -> bool:
        """Whether the unmeasured first query's window held every run we could be after."""
        start = self.server_time(since)
        return start is None or abs(start - since) < UNMEASURED - MARGIN

    async def _query(
        self, spec: RunSpec, since: datetime, group: str | None
    ) -> list[dict[str, Any]]:
        filters: list[dict[str, Any]] = [
            {"operand": "PipelineName", "operator": "Equals", "values": [spec.pipeline]}
        ]
        if group is not None:
            filters.append({"operand": "RunGroupId", "operator": "Equals", "values": [group]})
        start, now = self.server_time(since), self.server_time(datetime.now(UTC))
        body: dict[str, Any] = {
            # a run is updated no earlier than it starts
            "lastUpdatedAfter": since - UNMEASURED if start is None else start - MARGIN,
            "lastUpdatedBefore": (now or datetime.now(UTC)) + UNMEASURED,
            "filters": filters,
            "orderBy": [{"orderBy": "RunStart", "order": "ASC"}],
        }
        factory = FactoryRef(spec.subscription, spec.resource_group, spec.factory)
        return await self._reads.query_all(factory, body, max_pages=RECONCILE_MAX_PAGES)
