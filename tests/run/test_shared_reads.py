"""Shared reads: the runs waiting on one pipeline make one queryPipelineRuns per poll together."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from batchrun.arm.client import QueryResponse, RateLimits
from batchrun.arm.retry import RetrySettings
from batchrun.errors import ApiError
from batchrun.model import RunSpec
from batchrun.run.reconcile import RECONCILE_FAILED, Reconciler, ReconcileSettings
from batchrun.run.sharedreads import claim_key
from tests.helpers.timeline import Timeline

if TYPE_CHECKING:
    from collections.abc import Mapping

NO_RETRY = RetrySettings(max_attempts=1)
LOOK = ReconcileSettings(window_s=10.0, first_poll_s=1.0, max_poll_s=8.0)


def spec(name: str, **fields: Any) -> RunSpec:
    values: dict[str, Any] = {
        "id": name,
        "subscription": "sub",
        "resource_group": "rg",
        "factory": "factory-a",
        "pipeline": "LoadOrders",
        "parameters": {"part": name},
    }
    return RunSpec(**(values | fields))


@dataclass
class Query:
    at: float
    factory: str
    filters: list[dict[str, Any]]


@dataclass
class QueriedAdf:
    """Lists the runs it holds once they are visible; remembers every query and when it came."""

    timeline: Timeline
    runs: list[dict[str, Any]] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    error: ApiError | None = None

    def add(self, run_spec: RunSpec, *, visible_at: float) -> str:
        run_id = str(uuid.uuid4())
        self.runs.append(
            {
                "runId": run_id,
                "runGroupId": run_id,
                "factory": run_spec.factory,
                "pipelineName": run_spec.pipeline,
                "parameters": {k: str(v) for k, v in run_spec.parameters.items()},
                "invokedBy": {"name": "Manual", "invokedByType": "Manual"},
                "runStart": datetime.now(UTC).isoformat(),
                "visible_at": visible_at,
            }
        )
        return run_id

    async def query_pipeline_runs(
        self,
        *,
        subscription: str,
        resource_group: str,
        factory: str,
        filter_parameters: Mapping[str, Any],
        client_request_id: str | None = None,
    ) -> QueryResponse:
        self.queries.append(Query(self.timeline.now, factory, filter_parameters["filters"]))
        if self.error is not None:
            raise self.error
        visible = [
            run
            for run in self.runs
            if run["visible_at"] <= self.timeline.now and run["factory"] == factory
        ]
        return QueryResponse(visible, None, RateLimits(reads=10_000), None)

    async def get_pipeline_run(self, **_: Any) -> dict[str, Any]:
        raise AssertionError("no entry here reruns a reference run")


def reconciler(adf: QueriedAdf, look: ReconcileSettings = LOOK) -> Reconciler:
    return Reconciler(
        reader=adf,
        settings=look,
        retry=NO_RETRY,
        clock=adf.timeline.monotonic,
        sleep=adf.timeline.sleep,
    )


async def wait_all(
    finder: Reconciler, timeline: Timeline, specs: list[RunSpec], *, spacing_s: float = 0.0
) -> list[str | None]:
    """Every spec's lost answer looked for, the n-th arriving ``n * spacing_s`` after the first."""
    since = datetime.now(UTC)

    async def one(n: int, run_spec: RunSpec) -> str | None:
        if n * spacing_s:
            await timeline.sleep(n * spacing_s)
        deadline = timeline.now + LOOK.window_s
        return await finder.find(run_spec, created_since=since, deadline=deadline)

    return list(await asyncio.gather(*(one(n, s) for n, s in enumerate(specs))))


async def test_fifty_waiters_make_as_many_queries_as_one() -> None:
    alone = QueriedAdf(Timeline())
    await alone.timeline.run(wait_all(reconciler(alone), alone.timeline, [spec("x")]))
    crowd = QueriedAdf(Timeline())
    specs = [spec(f"run-{n}") for n in range(50)]
    found = await crowd.timeline.run(wait_all(reconciler(crowd), crowd.timeline, specs))
    assert found == [None] * 50
    # none was created: each looked until the window's end, all on the same polls
    assert len(alone.queries) >= 4
    assert len(crowd.queries) == len(alone.queries)


async def test_waiters_arriving_one_by_one_share_a_poll_a_second_at_most() -> None:
    adf = QueriedAdf(Timeline())
    specs = [spec(f"run-{n}") for n in range(100)]
    found = await adf.timeline.run(
        wait_all(reconciler(adf), adf.timeline, specs, spacing_s=0.05)
    )  # fmt: skip
    assert found == [None] * 100
    times = [query.at for query in adf.queries]
    assert all(later - earlier >= LOOK.first_poll_s for earlier, later in itertools.pairwise(times))
    # the last arrives after 5 s and looks for 10 s: one poll a second, and a last one
    assert len(times) <= (5 + 10) / LOOK.first_poll_s + 1
    # alone, each would have made at least four
    assert len(times) < 100


async def test_one_poll_finds_every_waiters_run_and_each_takes_its_own() -> None:
    adf = QueriedAdf(Timeline())
    specs = [spec(f"run-{n}") for n in range(30)]
    # two entries with the same parameters: two runs, one for each, never one run for both
    twins = [
        spec("twin-a", parameters={"part": "same"}),
        spec("twin-b", parameters={"part": "same"}),
    ]
    created = {s.id: adf.add(s, visible_at=2.5) for s in specs}
    twin_runs = {adf.add(s, visible_at=2.5) for s in twins}
    found = await adf.timeline.run(wait_all(reconciler(adf), adf.timeline, specs + twins))
    assert found[:30] == [created[s.id] for s in specs]
    assert set(found[30:]) == twin_runs
    # polls at 0 s, 1 s and 3 s: the third lists every run, for all 32 at once
    assert [query.at for query in adf.queries] == [0.0, 1.0, 3.0]


async def test_runs_of_other_factories_and_pipelines_are_polled_apart() -> None:
    adf = QueriedAdf(Timeline())
    specs = [
        spec("a"),
        spec("b", factory="factory-b"),
        spec("c", pipeline="LoadRefunds"),
        spec("d"),
    ]
    for run_spec in specs:
        adf.add(run_spec, visible_at=0.0)
    found = await adf.timeline.run(wait_all(reconciler(adf), adf.timeline, specs))
    assert all(found)
    channels = {
        (query.factory, query.filters[0]["values"][0]) for query in adf.queries
    }  # fmt: skip
    assert channels == {
        ("factory-a", "LoadOrders"),
        ("factory-b", "LoadOrders"),
        ("factory-a", "LoadRefunds"),
    }
    assert len(adf.queries) == 3


async def test_a_failed_shared_read_fails_every_run_waiting_on_it() -> None:
    adf = QueriedAdf(Timeline())
    adf.error = ApiError(status=403, code="AuthorizationFailed", message="no read")
    finder = reconciler(adf)
    since = datetime.now(UTC)

    async def look(run_spec: RunSpec) -> ApiError:
        with pytest.raises(ApiError) as caught:
            await finder.find(run_spec, created_since=since, deadline=10.0)
        return caught.value

    async def all_three() -> list[ApiError]:
        return list(await asyncio.gather(*(look(spec(f"r{n}")) for n in range(3))))

    errors = await adf.timeline.run(all_three())
    assert [error.code for error in errors] == [RECONCILE_FAILED] * 3
    assert all("AuthorizationFailed" in error.message for error in errors)
    assert len(adf.queries) == 1


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("2f7fdb90-5df1-4b8e-ac2f-064cfa58202b", "2F7FDB90-5DF1-4B8E-AC2F-064CFA58202B", True),
        ("2f7fdb90-5df1-4b8e-ac2f-064cfa58202b", "2f7fdb90-5df1-4b8e-ac2f-064cfa58202c", False),
        # not a GUID: kept as written
        ("run-1", "run-1", True),
        ("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ", False),
    ],
)
def test_a_claimed_run_id_is_kept_by_its_guid_whatever_its_case(
    one: str, other: str, same: bool
) -> None:
    assert (claim_key(one) == claim_key(other)) is same


async def test_a_run_claimed_in_one_spelling_is_not_found_in_another() -> None:
    adf = QueriedAdf(Timeline())
    run_spec = spec("a")
    run_id = adf.add(run_spec, visible_at=0.0)
    finder = reconciler(adf)
    finder.claim(run_id.upper())
    found = await adf.timeline.run(wait_all(finder, adf.timeline, [run_spec]))
    assert found == [None]
