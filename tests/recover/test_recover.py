"""``batchrun recover``: finding, deciding, the manifest it writes, the scope file, the guard."""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from batchrun.arm.client import AdfClient, QueryResponse, RateLimits
from batchrun.arm.pacing import Pacers
from batchrun.arm.reads import GROUP_QUERIES_AT_ONCE
from batchrun.arm.retry import RetrySettings
from batchrun.cli.recover import add_arguments, parse_option_time, settings_from
from batchrun.emulator.clock import ManualClock
from batchrun.emulator.config import Topology
from batchrun.emulator.history import load_history
from batchrun.errors import ApiError, OutputError, ScopeError, UsageError
from batchrun.manifest.loader import load_manifest
from batchrun.manifest.scope import load_scope
from batchrun.model import FactoryRef, RunSpec
from batchrun.recover.output import (
    check_output,
    one_line,
    render_manifest,
    render_summary,
    write_manifest,
    yaml_string,
)
from batchrun.recover.search import (
    FROM_START,
    RUN_RETENTION,
    RecoverSettings,
    RecoveryPlan,
    StartPoint,
    Window,
    find_recoveries,
    retention_warning,
)
from batchrun.run.guard import newer_run_in_group
from tests.helpers.clock import FakeTime
from tests.helpers.emulator import emulator_client
from tests.helpers.paths import ROOT
from tests.helpers.recovery_history import (
    BIG,
    FACTORIES,
    SUB_A,
    SUB_B,
    History,
    HistoryRun,
    build_history,
    expected_specs,
    recovery_spec,
)

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp

    from tests.helpers.emulator import InProcessEmulator, ServeEmulator

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
FAST_RETRY = RetrySettings(max_attempts=4, max_seconds=60, backoff_initial_s=0.01)


@pytest.fixture
def history() -> History:
    return build_history(NOW)


@pytest.fixture
async def seeded(serve_emulator: ServeEmulator, history: History, tmp_path: Path) -> Any:
    async def serve(**settings: Any) -> InProcessEmulator:
        path = history.write(tmp_path / "history.json")
        past = load_history(path, Topology(accept_any=True))
        clock = ManualClock(NOW.timestamp())
        # real ADF refuses a RunGroupId filter with several values
        options = {"single_run_group_filter": True} | settings
        return await serve_emulator(clock=clock, history=past, **options)

    return serve


def adf_client(session: aiohttp.ClientSession, emulator: InProcessEmulator) -> AdfClient:
    return emulator_client(session, emulator.url)


async def search(
    client: Any, emulator: InProcessEmulator, history: History, **options: Any
) -> tuple[RecoveryPlan, FakeTime]:
    time = FakeTime(emulator.manual_clock)
    settings = RecoverSettings(window=Window(history.since, history.until), **options)
    plan = await find_recoveries(
        client,
        FACTORIES,
        settings,
        pacers=Pacers(clock=time.clock.monotonic, sleep=time.sleep),
        sleep=time.sleep,
        now=time.now,
    )
    return plan, time


def reason_for(latest: HistoryRun, statuses: tuple[str, ...]) -> str:
    if latest.status == "Succeeded":
        return f"rerun already succeeded (run {latest.run_id})"
    if latest.status in ("Queued", "InProgress", "Canceling"):
        return f"rerun in progress (run {latest.run_id} is {latest.status})"
    wanted = ", ".join(statuses)
    return f"latest run {latest.run_id} is {latest.status}, not one of --status {wanted}"


def written(plan: RecoveryPlan, tmp_path: Path, name: str = "recovery.yaml") -> Path:
    path = tmp_path / name
    write_manifest(path, render_manifest(plan, output=name), force=False)
    return path


# --- finding and deciding, against the emulator seeded with the history ------------------------


async def test_the_manifest_holds_the_latest_run_of_every_group_to_recover(
    seeded: Any, session: aiohttp.ClientSession, history: History, tmp_path: Path
) -> None:
    emulator = await seeded()
    plan, _ = await search(adf_client(session, emulator), emulator, history)
    expected = history.expected()
    assert history.matching_in(BIG) > 100, "the fixture must make the big factory page"
    assert not plan.failures and plan.auth_error is None

    manifest = load_manifest(written(plan, tmp_path), environ={})

    assert list(manifest.runs) == expected_specs(expected.recover)
    assert manifest.warnings == ()
    skipped = {skip.run.group_id: skip.reason for skip in plan.skipped}
    assert skipped == {
        group: reason_for(latest, ("Failed", "Cancelled"))
        for group, latest in expected.skipped.items()
    }


async def test_every_kind_of_group_is_in_the_fixture_and_decided(
    seeded: Any, session: aiohttp.ClientSession, history: History
) -> None:
    emulator = await seeded()
    plan, _ = await search(adf_client(session, emulator), emulator, history)
    recovered = {r.reference.run_id for r in plan.recoveries}
    by_scenario: dict[str, set[str]] = {}
    for run in history.runs:
        outcome = "recovered" if run.run_id in recovered else "not recovered"
        by_scenario.setdefault(run.scenario, set()).add(outcome)
    # each scenario recovers something, or (all of it) nothing, as the model decides
    expected = history.expected()
    for scenario, outcomes in by_scenario.items():
        model = {r.scenario for r in expected.recover.values()}
        assert ("recovered" in outcomes) == (scenario in model), scenario
    rerun_after = [r for r in plan.recoveries if r.outside_window]
    assert rerun_after, "a group rerun after the window and failed again is recovered"
    assert all(r.reference.run_start >= history.until for r in rerun_after)


async def test_a_group_rerun_and_failed_again_references_its_latest_failed_run(
    seeded: Any, session: aiohttp.ClientSession, history: History
) -> None:
    emulator = await seeded()
    plan, _ = await search(adf_client(session, emulator), emulator, history)
    by_group = {r.reference.group_id: r for r in plan.recoveries}
    groups = [run for run in history.runs if run.scenario == "rerun-failed-again"]
    for group_id in {run.group_id for run in groups}:
        runs = sorted((r for r in groups if r.group_id == group_id), key=lambda r: r.run_start)
        recovery = by_group[group_id]
        assert recovery.reference.run_id == runs[-1].run_id
        assert [run.run_id for run in recovery.found] == [run.run_id for run in runs]


@pytest.mark.parametrize(
    ("pipelines", "statuses"),
    [
        (("load*",), ("Failed", "Cancelled")),  # a glob, case-insensitive: filtered here
        (("BuildMarts", "ExportSales"), ("Failed", "Cancelled")),  # plain names: sent to ADF
        ((), ("Failed",)),
        ((), ("Cancelled",)),
    ],
)
async def test_pipeline_and_status_options_narrow_the_search(
    seeded: Any,
    session: aiohttp.ClientSession,
    history: History,
    tmp_path: Path,
    pipelines: tuple[str, ...],
    statuses: tuple[str, ...],
) -> None:
    emulator = await seeded()
    client = adf_client(session, emulator)
    plan, _ = await search(client, emulator, history, pipelines=pipelines, statuses=statuses)
    expected = history.expected(statuses=statuses, pipelines=pipelines)
    manifest = load_manifest(written(plan, tmp_path), environ={})
    assert list(manifest.runs) == expected_specs(expected.recover)
    skipped = {skip.run.group_id: skip.reason for skip in plan.skipped}
    assert skipped == {g: reason_for(run, statuses) for g, run in expected.skipped.items()}


@pytest.mark.parametrize(
    ("start", "fields"),
    [
        (StartPoint(), {"start_from_failure": True, "start_activity_name": None}),
        (FROM_START, {"start_from_failure": None, "start_activity_name": None}),
        (StartPoint(activity="Copy Orders"), {"start_from_failure": None,
                                               "start_activity_name": "Copy Orders"}),
    ],
)  # fmt: skip
async def test_start_point_sets_the_recovery_flags(
    seeded: Any,
    session: aiohttp.ClientSession,
    history: History,
    tmp_path: Path,
    start: StartPoint,
    fields: dict[str, Any],
) -> None:
    emulator = await seeded()
    plan, _ = await search(adf_client(session, emulator), emulator, history, start=start)
    runs = load_manifest(written(plan, tmp_path), environ={}).runs
    assert runs
    for run in runs:
        assert run.is_recovery is True
        assert run.parameters == {}
        assert {name: getattr(run, name) for name in fields} == fields


async def test_the_manifest_is_the_same_bytes_every_time_and_reviewable(
    seeded: Any, session: aiohttp.ClientSession, history: History
) -> None:
    emulator = await seeded()
    client = adf_client(session, emulator)
    first, _ = await search(client, emulator, history, concurrency=1)
    second, _ = await search(client, emulator, history, concurrency=4)
    text = render_manifest(first, output="recovery.yaml")
    assert text == render_manifest(second, output="recovery.yaml")
    lines = text.splitlines()
    by_id = {run.run_id: run for run in history.runs}
    for index, line in enumerate(lines):
        match = re.fullmatch(r"  - id: recover-(\S+)", line)
        if match is None:
            continue
        run = by_id[match[1]]
        comment = next(c for c in reversed(lines[:index]) if not c.startswith("  #   "))
        start = run.run_start.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert comment.startswith(f"  # {start} {run.status}: ")
        assert comment.endswith(one_line(run.message) or "(no message)")
    assert "# Skipped groups: not rerun" in text
    assert "rerun already succeeded" in text


async def test_the_summary_counts_runs_groups_and_skips_per_factory_and_pipeline(
    seeded: Any, session: aiohttp.ClientSession, history: History
) -> None:
    emulator = await seeded()
    plan, _ = await search(adf_client(session, emulator), emulator, history)
    summary = render_summary(plan)
    assert "searched 4 factories in 2 subscriptions" in summary
    expected = history.expected()
    for factory in FACTORIES:
        assert str(factory) in summary
    found = sum(len(search.found) for search in plan.searches)
    assert found == sum(history.matching_in(f) for f in FACTORIES)
    assert f"skipped {len(expected.skipped)} groups:" in summary
    big = next(s for s in plan.searches if s.factory == BIG)
    rows = re.findall(r"^  (\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", summary, re.MULTILINE)
    assert sum(int(row[1]) for row in rows) == found
    assert sum(int(row[3]) for row in rows) == len(expected.recover)
    assert len(big.found) > 100


async def test_a_low_reads_budget_slows_the_search_instead_of_failing_it(
    seeded: Any, session: aiohttp.ClientSession, history: History, tmp_path: Path
) -> None:
    emulator = await seeded(read_burst=6, read_refill=2.0)
    plan, time = await search(adf_client(session, emulator), emulator, history, retry=FAST_RETRY)
    assert not plan.failures
    manifest = load_manifest(written(plan, tmp_path), environ={})
    assert list(manifest.runs) == expected_specs(history.expected().recover)
    answers = emulator.state.stats.snapshot()["requests"]["queryPipelineRuns"]
    assert sum(time.slept) > 0
    # pacing on x-ms-ratelimit-remaining-subscription-reads keeps 429s rare
    assert answers.get("429", 0) <= 4, answers


# --- finding, against fakes --------------------------------------------------------------------


def wire_run(
    run_id: str, *, status: str = "Failed", latest: bool | None = True, **extra: Any
) -> dict[str, Any]:
    run: dict[str, Any] = {
        "runId": run_id,
        "runGroupId": extra.pop("group", run_id),
        "pipelineName": extra.pop("pipeline", "LoadOrders"),
        "status": status,
        "runStart": extra.pop("start", "2026-11-26T00:00:00.0000000Z"),
        "message": "boom",
    }
    if latest is not None:
        run["isLatest"] = latest
    return run | extra


Answer = Callable[[str, dict[str, Any], int], QueryResponse]  # (factory, body, call number)


@dataclass
class FakeReader:
    """Answers queries from a script; records them and the peak of requests in flight."""

    answer: Answer | None = None  # returns the page, or raises; None: no query is expected
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0

    async def query_pipeline_runs(
        self,
        *,
        subscription: str,
        resource_group: str,
        factory: str,
        filter_parameters: Mapping[str, Any],
        client_request_id: str | None = None,
    ) -> QueryResponse:
        self.calls.append((factory, dict(filter_parameters)))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            count = sum(1 for name, _ in self.calls if name == factory)
            assert self.answer is not None, f"a query of {factory} was not expected"
            return self.answer(factory, dict(filter_parameters), count)
        finally:
            self.in_flight -= 1

    async def get_pipeline_run(
        self, *, subscription: str, resource_group: str, factory: str, run_id: str
    ) -> dict[str, Any]:
        raise AssertionError("not expected")


def page(*runs: dict[str, Any], token: str | None = None) -> QueryResponse:
    return QueryResponse(list(runs), token, RateLimits(reads=200), None)


def window() -> Window:
    return Window(datetime(2026, 11, 25, 22, tzinfo=UTC), datetime(2026, 11, 26, 6, tzinfo=UTC))


def refs(count: int) -> list[FactoryRef]:
    return [FactoryRef(SUB_A, "rg-data", f"factory-{n:02d}") for n in range(count)]


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


async def find(reader: FakeReader, factories: list[FactoryRef], **options: Any) -> RecoveryPlan:
    settings = RecoverSettings(window=window(), retry=FAST_RETRY, **options)
    return await find_recoveries(reader, factories, settings, sleep=no_sleep)


async def test_factories_are_searched_at_most_concurrency_at_a_time() -> None:
    reader = FakeReader(lambda factory, body, n: page(wire_run(f"{factory}-run")))
    plan = await find(reader, refs(10), concurrency=3)
    assert reader.peak == 3
    assert len(plan.recoveries) == 10


async def test_transient_errors_are_retried_and_the_search_completes() -> None:
    def answer(factory: str, body: dict[str, Any], n: int) -> QueryResponse:
        if n == 1:
            raise ApiError(status=503, code="ServiceUnavailable", message="busy", transient=True)
        if n == 2:
            raise ApiError(status=429, code="Throttled", message="slow", retry_after=0.0,
                           transient=True, sent=False)  # fmt: skip
        return page(wire_run(f"{factory}-run"))

    plan = await find(FakeReader(answer), refs(2))
    assert not plan.failures
    assert [r.reference.run_id for r in plan.recoveries] == ["factory-00-run", "factory-01-run"]


async def test_a_factory_that_cannot_be_searched_is_reported_and_the_rest_are_searched() -> None:
    def answer(factory: str, body: dict[str, Any], n: int) -> QueryResponse:
        if factory == "factory-01":
            raise ApiError(status=404, code="ResourceNotFound", message="no such factory")
        return page(wire_run(f"{factory}-run"))

    plan = await find(FakeReader(answer), refs(3))
    assert [search.factory.factory for search in plan.failures] == ["factory-01"]
    assert len(plan.recoveries) == 2
    assert "ResourceNotFound" in render_summary(plan)


async def test_a_rejected_token_stops_the_search() -> None:
    def answer(factory: str, body: dict[str, Any], n: int) -> QueryResponse:
        raise ApiError(status=401, code="InvalidAuthenticationToken", message="bad token")

    reader = FakeReader(answer)
    plan = await find(reader, refs(5), concurrency=1)
    assert isinstance(plan.auth_error, ApiError) and plan.auth_error.status == 401
    assert len(reader.calls) == 1


async def test_paging_follows_continuation_tokens_and_is_bounded() -> None:
    def answer(factory: str, body: dict[str, Any], n: int) -> QueryResponse:
        assert body.get("continuationToken") == (None if n == 1 else f"t{n - 1}")
        return page(wire_run(f"run-{n}"), token=f"t{n}")

    reader = FakeReader(answer)
    plan = await find(reader, refs(1), max_pages=5)
    [failure] = plan.failures
    assert isinstance(failure.error, ApiError) and failure.error.code == "TooManyPages"
    assert len(reader.calls) == 5


async def test_the_search_query_filters_status_and_window_and_checks_run_start_itself() -> None:
    early = "2026-11-25T21:00:00.0000000Z"  # updated in the window, started before it

    def answer(factory: str, body: dict[str, Any], n: int) -> QueryResponse:
        return page(wire_run("in-window"), wire_run("started-before", start=early),
                    wire_run("other-pipeline", pipeline="Export"))  # fmt: skip

    reader = FakeReader(answer)
    plan = await find(reader, refs(1), pipelines=("load*",))
    assert [r.reference.run_id for r in plan.recoveries] == ["in-window"]
    [(_, body)] = reader.calls
    assert body["lastUpdatedAfter"] == window().since
    assert body["lastUpdatedBefore"] == window().until
    assert body["filters"] == [
        {"operand": "Status", "operator": "In", "values": ["Failed", "Cancelled"]}
    ]


async def test_a_run_without_is_latest_is_looked_up_not_assumed_latest() -> None:
    def answer(factory: str, body: dict[str, Any], n: int) -> QueryResponse:
        if n == 1:
            return page(wire_run("old", latest=None, group="g"))
        operands = {f["operand"]: f["values"] for f in body["filters"]}
        # one LatestOnly scan of the factory, narrowed to the one pipeline rerun
        assert operands == {"LatestOnly": ["true"], "PipelineName": ["LoadOrders"]}
        return page(wire_run("other", group="h"), wire_run("new", status="Succeeded", group="g"))

    plan = await find(FakeReader(answer), refs(1))
    [skip] = plan.skipped
    assert skip.reason == "rerun already succeeded (run new)"
    assert plan.recoveries == []


def group_filter(body: Mapping[str, Any]) -> dict[str, Any] | None:
    return next((f for f in body["filters"] if f["operand"] == "RunGroupId"), None)


async def test_groups_the_scan_does_not_reach_are_asked_one_by_one_a_few_at_a_time() -> None:
    groups = [f"g{n}" for n in range(10)]

    def answer(factory: str, body: dict[str, Any], n: int) -> QueryResponse:
        if any(f["operand"] == "Status" for f in body["filters"]):
            return page(*(wire_run(f"old-{g}", latest=False, group=g) for g in groups))
        asked = group_filter(body)
        if asked is None:  # the LatestOnly scan: a busy factory, page after page of other runs
            return page(wire_run(f"other-{n}", group=f"other-{n}"), token=f"t{n}")
        assert asked["operator"] == "Equals" and len(asked["values"]) == 1, asked
        group = asked["values"][0]
        return page(wire_run(f"new-{group}", status="Succeeded", group=group))

    reader = FakeReader(answer)
    plan = await find(reader, refs(1))
    assert sorted(skip.reason for skip in plan.skipped) == sorted(
        f"rerun already succeeded (run new-{g})" for g in groups
    )
    lookups = [body for _, body in reader.calls if group_filter(body) is not None]
    scans = [body for _, body in reader.calls if "Status" not in str(body) and body not in lookups]
    # the scan may spend as many reads as asking every group would, no more
    assert len(scans) == len(groups)
    assert sorted(group_filter(body)["values"][0] for body in lookups) == groups  # type: ignore[index]
    assert reader.peak == GROUP_QUERIES_AT_ONCE


async def test_a_scan_that_sees_every_group_asks_no_group_on_its_own() -> None:
    groups = [f"g{n}" for n in range(30)]

    def answer(factory: str, body: dict[str, Any], n: int) -> QueryResponse:
        if any(f["operand"] == "Status" for f in body["filters"]):
            return page(*(wire_run(f"old-{g}", latest=False, group=g) for g in groups))
        assert group_filter(body) is None
        half = groups[:15] if "continuationToken" not in body else groups[15:]
        return page(*(wire_run(f"new-{g}", group=g) for g in half),
                    token=None if "continuationToken" in body else "next")  # fmt: skip

    reader = FakeReader(answer)
    plan = await find(reader, refs(1))
    assert sorted(r.reference.run_id for r in plan.recoveries) == sorted(f"new-{g}" for g in groups)
    assert len(reader.calls) == 3


async def test_hundreds_of_rerun_groups_are_decided_with_one_group_per_filter(
    serve_emulator: ServeEmulator, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    history = build_history(NOW, reruns=300)
    past = load_history(history.write(tmp_path / "history.json"), Topology(accept_any=True))
    emulator = await serve_emulator(
        clock=ManualClock(NOW.timestamp()), history=past, single_run_group_filter=True
    )
    plan, _ = await search(adf_client(session, emulator), emulator, history)
    assert not plan.failures, [str(f.error) for f in plan.failures]
    expected = history.expected()
    assert len(expected.recover) + len(expected.skipped) > 300
    manifest = load_manifest(written(plan, tmp_path), environ={})
    assert list(manifest.runs) == expected_specs(expected.recover)
    assert {skip.run.group_id for skip in plan.skipped} == set(expected.skipped)
    answers = emulator.state.stats.snapshot()["requests"]["queryPipelineRuns"]
    assert answers == {"200": plan.queries}
    # the window's pages and a few pages of latest runs per factory, not a read per group
    assert plan.queries <= 20, plan.queries


async def test_the_guard_asks_for_its_group_with_one_equals_filter() -> None:
    class Rerun(FakeReader):
        async def get_pipeline_run(self, **_: str) -> dict[str, Any]:
            return wire_run("r1", latest=False, group="g")

    reader = Rerun(lambda factory, body, n: page(wire_run("r2", group="g")))
    spec = RunSpec(id="b", subscription=SUB_A, resource_group="rg", factory="fac", pipeline="P",
                   reference_run_id="r1", is_recovery=True)  # fmt: skip
    assert await newer_run_in_group(reader, spec) == "r2"
    [(_, body)] = reader.calls
    assert group_filter(body) == {"operand": "RunGroupId", "operator": "Equals", "values": ["g"]}


# --- the guard: newer_run_in_group ------------------------------------------------------------


async def test_newer_run_in_group_finds_the_rerun_of_a_reference_run(
    seeded: Any, session: aiohttp.ClientSession, history: History
) -> None:
    emulator = await seeded()
    client = adf_client(session, emulator)
    time = FakeTime(emulator.manual_clock)
    group = sorted(
        (run for run in history.runs if run.scenario == "rerun-succeeded"),
        key=lambda run: (run.group_id, run.run_start),
    )[:2]
    first, second = group
    assert first.group_id == second.group_id
    assert await newer_run_in_group(client, recovery_spec(first), now=time.now) == second.run_id
    assert await newer_run_in_group(client, recovery_spec(second), now=time.now) is None


async def test_newer_run_in_group_sees_a_recovery_run_just_created(
    seeded: Any, session: aiohttp.ClientSession, history: History
) -> None:
    emulator = await seeded()
    client = adf_client(session, emulator)
    time = FakeTime(emulator.manual_clock)
    failed = next(run for run in history.runs if run.scenario == "failed")
    spec = recovery_spec(failed)
    assert await newer_run_in_group(client, spec, now=time.now) is None
    created = await client.create_run(spec, client_request_id="guard-test")
    await time.sleep(1)
    assert await newer_run_in_group(client, spec, now=time.now) == created.run_id
    rerun = await client.get_pipeline_run(
        subscription=spec.subscription,
        resource_group=spec.resource_group,
        factory=spec.factory,
        run_id=created.run_id,
    )
    assert rerun["runGroupId"] == failed.group_id
    assert rerun["isLatest"] is True


async def test_newer_run_in_group_asks_nothing_for_an_entry_that_is_not_a_recovery() -> None:
    reader = FakeReader()
    plain = RunSpec(id="a", subscription=SUB_A, resource_group="rg", factory="fac", pipeline="P")
    rerun = RunSpec(id="b", subscription=SUB_A, resource_group="rg", factory="fac", pipeline="P",
                    reference_run_id="r1", is_recovery=False)  # fmt: skip
    assert await newer_run_in_group(reader, plain) is None
    assert await newer_run_in_group(reader, rerun) is None
    assert reader.calls == []


async def test_newer_run_in_group_refuses_when_the_newer_run_cannot_be_seen() -> None:
    class Stale(FakeReader):
        async def get_pipeline_run(self, **_: str) -> dict[str, Any]:
            return wire_run("r1", latest=False, group="g")

    reader = Stale(lambda factory, body, n: page())
    spec = RunSpec(id="b", subscription=SUB_A, resource_group="rg", factory="fac", pipeline="P",
                   reference_run_id="r1", is_recovery=True)  # fmt: skip
    with pytest.raises(ApiError) as caught:
        await newer_run_in_group(reader, spec)
    assert caught.value.code == "LatestRunNotFound"
    assert caught.value.transient


# --- scope files --------------------------------------------------------------------------------


def scope_file(tmp_path: Path, text: str, name: str = "scope.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_scope_file_lists_factories_with_defaults_and_lists(tmp_path: Path) -> None:
    path = scope_file(tmp_path, f"""version: 1
defaults:
  subscription: {SUB_A}
  resource_group: rg-data
factories:
  - factory: sales-eu
  - factory: [sales-us, sales-apac]
  - {{subscription: "${{OPS_SUBSCRIPTION}}", resource_group: rg-ops, factory: ops-core}}
""")  # fmt: skip
    scope = load_scope(path, environ={"OPS_SUBSCRIPTION": SUB_B})
    assert scope.factories == (
        FactoryRef(SUB_A, "rg-data", "sales-eu"),
        FactoryRef(SUB_A, "rg-data", "sales-us"),
        FactoryRef(SUB_A, "rg-data", "sales-apac"),
        FactoryRef(SUB_B, "rg-ops", "ops-core"),
    )
    assert scope.warnings == ()


def test_a_manifest_is_a_scope_of_its_distinct_factories(tmp_path: Path) -> None:
    path = scope_file(tmp_path, f"""version: 1
defaults: {{subscription: {SUB_A}, resource_group: rg-data}}
runs:
  - {{factory: sales-eu, pipeline: [LoadOrders, BuildMarts]}}
  - {{factory: SALES-EU, pipeline: ExportSales}}
  - {{factory: sales-us, pipeline: LoadOrders}}
""")  # fmt: skip
    scope = load_scope(path, environ={})
    assert scope.factories == (
        FactoryRef(SUB_A, "rg-data", "sales-eu"),
        FactoryRef(SUB_A, "rg-data", "sales-us"),
    )


def test_the_example_scope_file_is_valid() -> None:
    example = ROOT / "configs" / "scope.example.yaml"
    scope = load_scope(example, environ={})
    assert len(scope.factories) >= 3
    assert len(scope.subscriptions) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("factories: [{subscription: s, resource_group: rg, factory: fac}]\n",
         "scope.yaml:1:1: missing 'version: 1'"),
        ("version: 1\nfactories:\n  - {subscription: s, resource_group: rg, factroy: fac}\n",
         "scope.yaml:3:43: factories[0].factroy: unknown key 'factroy': did you mean 'factory'?"),
        ("version: 1\nfactories:\n  - subscription: s\n    resource_group: rg\n"
         "    factory: no_underscores\n",
         "scope.yaml:5:14: factories[0].factory: 'no_underscores' is not a valid factory name"),
        ("version: 1\ndefaults: {subscription: s}\nfactories:\n  - factory: fac\n",
         "scope.yaml:4:5: factories[0]: missing 'resource_group'"),
        ("version: 1\ndefaults: {subscription: s, resource_group: rg}\n"
         "factories:\n  - factory: [fac, other]\n  - factory: FAC\n",
         "scope.yaml:5:14: factories[1].factory: factory s/rg/FAC is already listed by "
         "factories[0].factory[0]"),
        ("version: 1\nfactories:\n  - {subscription: '${NOPE}', resource_group: rg, factory: f1}\n",
         "scope.yaml:3:20: factories[0].subscription: environment variable NOPE is not set"),
        ("version: 2\nfactories: []\n", "scope.yaml:1:10: version: expected 1, got '2'"),
        ("version: 1\nfactories: [\n", "scope.yaml:3:1: invalid YAML"),
        ("version: 1\nrun: []\n", "scope.yaml:2:1: run: unknown key 'run'"),
    ],
)  # fmt: skip
def test_scope_file_errors_say_where(tmp_path: Path, text: str, expected: str) -> None:
    path = scope_file(tmp_path, text)
    with pytest.raises(ScopeError) as caught:
        load_scope(path, environ={})
    assert expected in str(caught.value).replace(str(tmp_path) + "/", "")


def test_a_subscription_that_is_not_a_guid_is_a_warning(tmp_path: Path) -> None:
    path = scope_file(tmp_path, "version: 1\nfactories:\n"
                      "  - {subscription: my-sub, resource_group: rg, factory: fac}\n")  # fmt: skip
    scope = load_scope(path, environ={})
    [warning] = scope.warnings
    assert "does not look like a subscription id" in str(warning)


# --- the command line's settings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T22:00Z", datetime(2026, 11, 25, 22, tzinfo=UTC)),
        ("2026-11-25T22:00:30Z", datetime(2026, 11, 25, 22, 0, 30, tzinfo=UTC)),
        ("2026-11-25T23:00+01:00", datetime(2026, 11, 25, 22, tzinfo=UTC)),
        ("2026-11-25T22:00:00.1234567Z", datetime(2026, 11, 25, 22, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_times_are_iso_8601_with_a_zone(text: str, expected: datetime) -> None:
    parsed = parse_option_time(text, option="--since")
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-11-25T22:00", "has no time zone"),
        ("2026-11-25", "has no time zone"),
        ("yesterday", "is not an ISO 8601"),
    ],
)
def test_a_time_without_a_zone_or_format_is_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_option_time(text, option="--since")


def parse_recover(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--scope", "s.yaml", *argv])


def test_until_defaults_to_now_and_must_follow_since() -> None:
    args = parse_recover("--since", "2026-11-25T22:00Z", "--status", "failed")
    settings = settings_from(args, now=NOW)
    assert settings.window == Window(datetime(2026, 11, 25, 22, tzinfo=UTC), NOW)
    assert settings.statuses == ("Failed",)
    late = parse_recover("--since", "2026-11-26T08:00Z", "--until", "2026-11-26T07:00Z")
    with pytest.raises(UsageError, match="is not before --until"):
        settings_from(late, now=NOW)


def test_from_start_and_start_activity_exclude_each_other() -> None:
    assert settings_from(parse_recover("--since", "2026-11-25T22:00Z", "--from-start"),
                         now=NOW).start == FROM_START  # fmt: skip
    activity = parse_recover("--since", "2026-11-25T22:00Z", "--start-activity", "CopyOrders")
    assert settings_from(activity, now=NOW).start == StartPoint(activity="CopyOrders")
    with pytest.raises(SystemExit):
        parse_recover("--since", "x", "--from-start", "--start-activity", "CopyOrders")


# --- writing -----------------------------------------------------------------------------------


TRICKY = [
    "plain", "123", "1.5", "true", "null", "~", "2026-11-25", "yes", "a: b # c", "'quoted'",
    '"double"', "${HOME}", "$$", "cost $5", "ünï ✓ 😀", "tab\there", "- dash", "[x]", "{x}",
    "*alias", "&anchor", "!tag", "%percent", "@at", "`tick", "  spaces  ", "#hash", "a\\b",
    "line\nbreak", "0x1F", "12:30", ".5", "=", "<<",
]  # fmt: skip


@pytest.mark.parametrize("value", TRICKY)
def test_strings_are_written_so_the_manifest_reads_them_back_exactly(
    tmp_path: Path, value: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        f"version: 1\nruns:\n  - id: {yaml_string(value)}\n    subscription: {SUB_A}\n"
        "    resource_group: rg\n    factory: fac\n    pipeline: P\n"
    )
    [run] = load_manifest(path, environ={"HOME": "/nowhere"}).runs
    assert run.id == value


def test_a_message_becomes_one_short_printable_line() -> None:
    assert one_line("a\nb\r\n\tc\u2028d\x00e\x1b[0m") == "a b c d e [0m"
    long = one_line("word " * 100)
    assert len(long) == 120 and long.endswith("…")
    assert yaml.safe_load(f"k: 1 # {one_line('x' * 500)}") == {"k": 1}


def test_an_existing_manifest_is_not_replaced_without_force(tmp_path: Path) -> None:
    path = tmp_path / "recovery.yaml"
    path.write_text("mine\n")
    with pytest.raises(UsageError, match="already exists"):
        write_manifest(path, "new\n", force=False)
    assert path.read_text() == "mine\n"
    write_manifest(path, "new\n", force=True)
    assert path.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recovery.yaml"]


def test_an_output_name_too_long_for_the_file_system_is_a_clear_error(tmp_path: Path) -> None:
    # 250 characters fit NAME_MAX (255) but the temporary ".NAME.PID.tmp" beside it does not
    path = tmp_path / ("r" * 246 + ".yaml")
    check_output(path, force=False)
    with pytest.raises(OutputError, match="cannot write the recovery manifest"):
        write_manifest(path, "new\n", force=False)
    with pytest.raises(UsageError, match="cannot be used as -o"):
        check_output(tmp_path / ("r" * 300 + ".yaml"), force=False)
    assert list(tmp_path.iterdir()) == []


def test_a_window_is_half_open_on_run_start() -> None:
    w = Window(NOW - timedelta(hours=1), NOW)
    assert w.contains(NOW - timedelta(hours=1))
    assert not w.contains(NOW)


@pytest.mark.parametrize(
    ("age", "warned"),
    [
        (timedelta(days=2), False),
        (RUN_RETENTION, False),
        (RUN_RETENTION + timedelta(hours=1), True),
    ],
)
def test_a_window_older_than_adfs_run_retention_is_warned_about(
    age: timedelta, warned: bool
) -> None:
    window = Window(NOW - age, NOW)
    warning = retention_warning(window, now=NOW)
    assert (warning is not None) == warned
    if warning is not None:
        assert "45 days" in warning
        assert f"before {NOW - RUN_RETENTION:%Y-%m-%dT%H:%MZ} cannot be found" in warning
