"""Paged, paced reads: the reads budget (per principal and global), the server's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from batchrun.arm.client import AdfClient, QueryResponse, RateLimits
from batchrun.arm.pacing import Pacers
from batchrun.arm.ratelimit import server_date
from batchrun.arm.reads import PagedReads
from batchrun.arm.retry import RetrySettings
from batchrun.arm.timeouts import Timeouts
from batchrun.model import FactoryRef

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tests.helpers.emulator import ServeEmulator

R, GR = (
    "x-ms-ratelimit-remaining-subscription-reads",
    "x-ms-ratelimit-remaining-subscription-global-reads",
)
FACTORY = FactoryRef("11111111-1111-1111-1111-111111111111", "rg-data", "factory-0")
OURS = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "remaining"),
    [
        ({}, None),
        ({R: "11999"}, 11999),
        ({R: "240", GR: "3700"}, 240),
        ({R: "240", GR: "12"}, 12),
        ({GR: "9"}, 9),
        ({R: "240", GR: "many"}, 240),
    ],
)
def test_the_reads_budget_is_the_smaller_of_reads_and_global_reads(
    headers: dict[str, str], remaining: int | None
) -> None:
    assert RateLimits.from_headers(headers).remaining_reads == remaining


@pytest.mark.parametrize(
    ("value", "moment"),
    [
        ("Thu, 26 Nov 2026 02:00:07 GMT", datetime(2026, 11, 26, 2, 0, 7, tzinfo=UTC)),
        ("Thu, 26 Nov 2026 03:00:07 +0100", datetime(2026, 11, 26, 2, 0, 7, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
    ],
)
def test_the_server_clock_is_read_from_the_date_header(value: str, moment: datetime | None) -> None:
    assert server_date({"Date": value}) == moment
    assert server_date({}) is None


class FixedReader:
    """Answers every query with the same headers' worth of limits and server time."""

    def __init__(self, limits: RateLimits, server: datetime | None = None) -> None:
        self.limits = limits
        self.server = server
        self.calls = 0

    async def query_pipeline_runs(self, **_: Any) -> QueryResponse:
        self.calls += 1
        return QueryResponse([], None, self.limits, None, server_date=self.server)

    async def get_pipeline_run(self, **_: Any) -> dict[str, Any]:
        raise AssertionError("not expected")


class Sleeps:
    """Sleeping moves this fake clock instead of waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


async def reads_after_two_queries(limits: RateLimits) -> list[float]:
    sleeps = Sleeps()
    pacers = Pacers(clock=sleeps.clock, sleep=sleeps)
    reads = PagedReads(FixedReader(limits), RetrySettings(), pacers, sleeps)
    body: Mapping[str, Any] = {"filters": []}
    for _ in range(2):
        await reads.query_all(FACTORY, body, max_pages=1)
    return sleeps.waits


async def test_reads_slow_down_when_the_global_reads_budget_is_nearly_spent() -> None:
    assert await reads_after_two_queries(RateLimits(reads=11999)) == []
    waits = await reads_after_two_queries(RateLimits(reads=11999, global_reads=1))
    assert waits and all(wait > 0 for wait in waits)


async def test_paged_reads_measure_the_server_clock_against_ours() -> None:
    server = OURS + timedelta(minutes=7)
    reads = PagedReads(
        FixedReader(RateLimits(), server), RetrySettings(), Pacers(), Sleeps(), now=lambda: OURS
    )
    assert reads.server_offset is None
    await reads.query_all(FACTORY, {"filters": []}, max_pages=1)
    assert reads.server_offset == timedelta(minutes=7)


class StaticTokens:
    async def get_token(self) -> str:
        return "test-token"


async def test_the_client_reads_global_reads_and_date_from_arm(
    serve_emulator: ServeEmulator,
) -> None:
    emulator = await serve_emulator()
    async with aiohttp.ClientSession() as session:
        client = AdfClient(
            session=session, endpoint=emulator.url, tokens=StaticTokens(),
            timeouts=Timeouts(connect_s=5, read_s=5),
        )  # fmt: skip
        page = await client.query_pipeline_runs(
            subscription=FACTORY.subscription,
            resource_group=FACTORY.resource_group,
            factory=FACTORY.factory,
            filter_parameters={"lastUpdatedAfter": OURS, "lastUpdatedBefore": OURS},
        )
    assert page.limits.global_reads is not None
    assert page.limits.remaining_reads == min(page.limits.reads or 0, page.limits.global_reads)
    emulator_now = datetime.fromtimestamp(emulator.clock.time(), UTC)
    assert page.server_date is not None
    assert abs(page.server_date - emulator_now) <= timedelta(seconds=1)
