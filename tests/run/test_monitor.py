"""The monitor against the in-process emulator, with time moved by its ManualClock: one
queryPipelineRuns per factory per poll, windows that skip unchanged runs, paging, 429s on reads,
timeouts with and without cancel, the adaptive interval, and stopping."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from batchrun.arm.client import AdfClient, QueryResponse
from batchrun.arm.pacing import Pacers
from batchrun.arm.retry import RetrySettings
from batchrun.arm.timeouts import Timeouts
from batchrun.errors import ApiError
from batchrun.model import FactoryRef, RunSpec
from batchrun.run.following import FollowSettings
from batchrun.run.monitor import MIN_INTERVAL_S, Monitor
from batchrun.run.outcome import Followed
from batchrun.run.progress import FollowProgress
from tests.helpers.emulator_http import RG, SUB, topology

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from tests.helpers.emulator import InProcessEmulator, ServeEmulator

FAST_RETRY = RetrySettings(max_attempts=6, max_seconds=600, backoff_initial_s=0.01)
FACTORIES = ("sales-eu", "sales-us", "finance-core")
CONFIG = f"""
x-pipelines: &pipelines
  LoadOrders: {{}}
  Flaky: {{failure_rate: 1.0}}
  Long: {{duration_ms: 600000}}
subscriptions:
  {SUB}:
    resource_groups:
      {RG}:
        factories:
          sales-eu: {{pipelines: *pipelines}}
          sales-us: {{pipelines: *pipelines}}
          finance-core: {{pipelines: *pipelines}}
"""


class StaticTokens:
    async def get_token(self) -> str:
        return "test-token"


class CountingClient(AdfClient):
    """The real client, counting the reads per factory and the rows they returned."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.queries: Counter[str] = Counter()
        self.rows = 0
        self.rows_per_query: list[int] = []
        self.activity_queries = 0
        self.refuse_reads = 0  # the next this many queryPipelineRuns answer 429
        self.refused = 0

    async def query_pipeline_runs(self, **kwargs: Any) -> QueryResponse:
        if self.refused < self.refuse_reads:
            self.refused += 1
            raise ApiError(
                status=429,
                code="SubscriptionRequestsThrottled",
                message="Number of 'read' requests exceeded.",
                retry_after=5.0,
                transient=True,
                sent=False,
            )
        answer = await super().query_pipeline_runs(**kwargs)
        self.queries[kwargs["factory"]] += 1
        self.rows += len(answer.value)
        self.rows_per_query.append(len(answer.value))
        return answer

    async def query_activity_runs(self, **kwargs: Any) -> QueryResponse:
        self.activity_queries += 1
        return await super().query_activity_runs(**kwargs)


@dataclass
class Rig:
    served: InProcessEmulator
    client: CountingClient
    sink: list[dict[str, Any]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    reads_per_poll: list[int] = field(default_factory=list)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.served.clock.time(), UTC)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.served.manual_clock.advance(seconds)

    def append(self, record: dict[str, Any]) -> None:
        self.sink.append(record)

    async def trigger(self, factory: str, pipeline: str, count: int) -> list[Followed]:
        followed = []
        for n in range(count):
            spec = RunSpec(f"{factory}.{pipeline}.{n}", SUB, RG, factory, pipeline)
            sent = self.now()
            answer = await self.client.create_run(spec, client_request_id=f"r{n}")
            followed.append(
                Followed(
                    id=spec.id,
                    factory=FactoryRef(SUB, RG, factory),
                    pipeline=pipeline,
                    run_id=answer.run_id,
                    sent_at=sent,
                    triggered_at=sent,
                    record={"id": spec.id, "status": "succeeded", "run_id": answer.run_id},
                )
            )
        return followed

    def monitor(
        self,
        settings: FollowSettings,
        progress: FollowProgress | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> Monitor:
        clock = self.served.clock
        sleep = sleep or self.sleep
        return Monitor(
            client=self.client,
            sink=self,
            settings=settings,
            progress=progress or FollowProgress(),
            now=self.now,
            sleep=sleep,
            read_pacers=Pacers(clock=clock.monotonic, sleep=sleep),
            write_pacers=Pacers(clock=clock.monotonic, sleep=sleep),
        )

    def outcomes(self) -> dict[str, str]:
        return {record["id"]: record["outcome"] for record in self.sink}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


@pytest.fixture
def rig(serve_emulator: ServeEmulator, session: aiohttp.ClientSession) -> Any:
    async def build(**settings: Any) -> Rig:
        options = {"run_queued_ms": 1000, "run_duration_ms": 5000, **settings}
        served = await serve_emulator(topology(CONFIG), **options)
        client = CountingClient(
            session=session,
            endpoint=served.url,
            tokens=StaticTokens(),
            timeouts=Timeouts(connect_s=5, read_s=5),
        )
        return Rig(served, client)

    return build


def settings(**overrides: Any) -> FollowSettings:
    return FollowSettings(**{"poll_s": 10.0, "retry": FAST_RETRY, **overrides})


async def test_a_mixed_batch_ends_with_one_query_per_factory_per_poll(rig: Any) -> None:
    r: Rig = await rig()
    runs = []
    for factory in FACTORIES:
        runs += await r.trigger(factory, "LoadOrders", 3)
        runs += await r.trigger(factory, "Flaky", 1)
    progress = FollowProgress()
    result = await r.monitor(settings(), progress).follow(runs)

    assert Counter(r.outcomes().values()) == {"Succeeded": 9, "Failed": 3}
    assert result.unfinished == 0
    # every poll read each factory once (one page each), never a GET per run
    assert dict(r.client.queries) == dict.fromkeys(FACTORIES, result.polls)
    # activity runs only for the failed ones
    assert r.client.activity_queries == 3
    failed = [rec for rec in r.sink if rec["outcome"] == "Failed"]
    assert {rec["failure"]["activity"] for rec in failed} == {"CopyFlaky"}
    assert {rec["failure"]["code"] for rec in failed} == {"2200"}
    assert progress.counts()["Succeeded"] == 9 and progress.counts()["Failed"] == 3
    assert progress.counts()["Queued"] == 0 and progress.counts()["InProgress"] == 0
    ok = next(rec for rec in r.sink if rec["outcome"] == "Succeeded")
    assert ok["run_duration_ms"] == 6000 and ok["queued_ms"] == 1000
    assert ok["status"] == "succeeded"  # the trigger line's status: --resume never re-triggers


async def test_runs_that_did_not_change_are_not_read_again(rig: Any) -> None:
    r: Rig = await rig(run_duration_ms=600_000)
    runs = await r.trigger("sales-eu", "LoadOrders", 5)
    result = await r.monitor(settings(poll_s=30.0)).follow(runs)
    assert set(r.outcomes().values()) == {"Succeeded"}
    # each run is in a page when it is new, when it starts and when it ends (and while those
    # updates are inside the overlap): nowhere near one row per run per poll
    assert result.polls > 20
    assert r.client.rows < 5 * result.polls / 3
    # while the runs are running and nothing changes, the polls come back empty
    assert r.client.rows_per_query[-8:-2] == [0] * 6


async def test_many_runs_are_paged_and_pages_bound_the_reads(rig: Any) -> None:
    r: Rig = await rig(write_burst=1000)
    runs = await r.trigger("sales-eu", "LoadOrders", 250)
    result = await r.monitor(settings()).follow(runs)
    assert len(r.sink) == 250
    # 250 runs are 3 pages of 100: never more reads than that per poll
    assert r.client.queries["sales-eu"] <= 3 * result.polls


@pytest.mark.parametrize("refusals", [3, 8])
async def test_429s_on_reads_slow_polling_and_fail_no_run(rig: Any, refusals: int) -> None:
    """3 refusals: retried inside one poll; 8 (more than the 6 attempts): the poll gives up on
    that factory, and the next poll asks for the same window again."""
    r: Rig = await rig()
    runs = await r.trigger("sales-eu", "LoadOrders", 2) + await r.trigger("sales-us", "Flaky", 2)
    r.client.refuse_reads = refusals
    monitor = r.monitor(settings(poll_s=2.0))
    result = await monitor.follow(runs)
    assert Counter(r.outcomes().values()) == {"Succeeded": 2, "Failed": 2}
    assert r.client.refused == refusals
    # each 429 paused the subscription for its Retry-After (5 s) before the next read
    assert sum(r.sleeps) >= 5 * refusals
    assert result.read_failures == (1 if refusals > 6 else 0)


async def test_a_timeout_reports_a_run_still_running(rig: Any) -> None:
    r: Rig = await rig()
    runs = await r.trigger("sales-eu", "Long", 2) + await r.trigger("sales-eu", "LoadOrders", 1)
    result = await r.monitor(settings(timeout_s=60.0)).follow(runs)
    assert sorted(r.outcomes().values()) == ["Succeeded", "TimedOut", "TimedOut"]
    timed_out = [rec for rec in r.sink if rec["outcome"] == "TimedOut"]
    assert {rec["run_status"] for rec in timed_out} == {"InProgress"}
    assert {rec["run_end"] for rec in timed_out} == {None}
    assert r.served.state.stats.snapshot()["cancels"] == {"recursive": 0, "not_recursive": 0}
    assert result.unfinished == 0
    # a timeout is seen within a poll of it
    assert r.served.clock.time() - runs[0].sent_at.timestamp() < 60 + 10 + 1


async def test_a_timeout_with_cancel_cancels_and_waits_for_cancelled(rig: Any) -> None:
    r: Rig = await rig(cancel_ms=3000)
    runs = await r.trigger("sales-eu", "Long", 2)
    await r.monitor(settings(timeout_s=30.0, on_timeout="cancel")).follow(runs)
    assert set(r.outcomes().values()) == {"TimedOut"}
    assert {rec["run_status"] for rec in r.sink} == {"Cancelled"}
    assert all(rec["run_end"] is not None for rec in r.sink)
    assert r.served.state.stats.snapshot()["cancels"]["recursive"] == 2


async def test_the_interval_grows_with_the_runs_age_and_stays_within_poll(rig: Any) -> None:
    r: Rig = await rig(run_duration_ms=300_000)
    runs = await r.trigger("sales-eu", "LoadOrders", 1)
    await r.monitor(settings(poll_s=20.0)).follow(runs)
    assert r.sleeps[0] == pytest.approx(MIN_INTERVAL_S)
    assert max(r.sleeps) == pytest.approx(20.0)
    assert all(s <= 20.0 for s in r.sleeps)
    assert r.sleeps == sorted(r.sleeps)


async def test_stop_ends_the_following_with_runs_unfinished(rig: Any) -> None:
    r: Rig = await rig(run_duration_ms=600_000)
    runs = await r.trigger("sales-eu", "LoadOrders", 3)
    stopping: list[Monitor] = []

    async def sleep_then_stop(seconds: float) -> None:
        await r.sleep(seconds)
        if len(r.sleeps) == 3:
            stopping[0].stop()  # as the SIGTERM handler does

    monitor = r.monitor(settings(), sleep=sleep_then_stop)
    stopping.append(monitor)
    result = await monitor.follow(runs)
    assert result.unfinished == 3
    assert r.sink == []


async def test_runs_added_while_following_are_followed_until_the_feed_closes(rig: Any) -> None:
    r: Rig = await rig()
    first = await r.trigger("sales-eu", "LoadOrders", 1)
    progress = FollowProgress()
    monitor = r.monitor(settings(), progress)
    ends: list[tuple[str, str]] = []
    adding: list[asyncio.Future[None]] = []

    async def add_next() -> None:
        (second,) = await r.trigger("sales-us", "Flaky", 1)
        monitor.add(second)
        monitor.add(second)  # one outcome line per run, however often it is added

    def ended(followed: Followed, outcome: str) -> None:
        ends.append((followed.id, outcome))
        if len(ends) == 1:
            # nothing is followed while this one is triggered: the monitor waits for it
            adding.append(asyncio.ensure_future(add_next()))
        else:
            monitor.close()

    monitor.on_end = ended
    result = await monitor.follow(first, open_feed=True)

    assert ends == [("sales-eu.LoadOrders.0", "Succeeded"), ("sales-us.Flaky.0", "Failed")]
    assert [record["id"] for record in r.sink] == [run_id for run_id, _ in ends]
    assert result.unfinished == 0 and progress.total == 2 and progress.done == 2
    await asyncio.gather(*adding)


async def test_a_closed_feed_with_nothing_to_follow_ends_at_once(rig: Any) -> None:
    r: Rig = await rig()
    monitor = r.monitor(settings())
    monitor.close()
    result = await monitor.follow([], open_feed=True)
    assert result.polls == 0 and r.sink == []
