"""``--only-missing``: which runs ADF already ran to success, asked of the emulator on loopback."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from batchrun.arm.retry import RetrySettings
from batchrun.emulator.clock import ManualClock
from batchrun.emulator.config import Topology
from batchrun.emulator.history import parse_history
from batchrun.errors import ApiError
from batchrun.model import RunSpec
from batchrun.report.reader import read_records
from batchrun.report.writer import ReportWriter
from batchrun.run.journal import BatchIdentity, Journal
from batchrun.run.missing import (
    ONLY_MISSING_FAILED,
    AlreadySucceeded,
    OnlyMissing,
    Search,
    find_succeeded,
)
from batchrun.run.progress import Progress
from batchrun.run.runner import BatchSettings, resumption
from tests.helpers.emulator import emulator_client

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import aiohttp

    from batchrun.arm.client import AdfClient, QueryResponse
    from tests.helpers.emulator import InProcessEmulator, ServeEmulator

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=7)
SUB = "11111111-1111-1111-1111-111111111111"
FAST_RETRY = RetrySettings(max_attempts=2, max_seconds=5, backoff_initial_s=0.01)


def past(
    run_date: str,
    *,
    status: str = "Succeeded",
    ended: datetime = NOW - timedelta(days=1),
    factory: str = "factory-0",
    pipeline: str = "LoadOrders",
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A run in the emulator's history, ``ended`` (a few minutes after it started)."""
    return {
        "factory": f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/"
        f"Microsoft.DataFactory/factories/{factory}",
        "pipelineName": pipeline,
        "runId": str(uuid.uuid4()),
        "status": status,
        "runStart": (ended - timedelta(minutes=3)).isoformat(),
        "runEnd": ended.isoformat(),
        "parameters": dict(parameters or {"run_date": run_date, "partition": 7}),
    }


def spec(
    run_id: str,
    *,
    factory: str = "factory-0",
    pipeline: str = "LoadOrders",
    **fields: Any,
) -> RunSpec:
    values: dict[str, Any] = {
        "id": run_id,
        "subscription": SUB,
        "resource_group": "rg-data",
        "factory": factory,
        "pipeline": pipeline,
        "parameters": {"run_date": run_id},
    }
    return RunSpec(**(values | fields))


@dataclass
class CountingReader:
    """The emulator's client, remembering which factory each query was for."""

    client: AdfClient
    factories: list[str] = field(default_factory=list)

    async def query_pipeline_runs(self, **kwargs: Any) -> QueryResponse:
        self.factories.append(kwargs["factory"])
        return await self.client.query_pipeline_runs(**kwargs)

    async def get_pipeline_run(self, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("--only-missing looks up no single run")


async def adf(
    serve_emulator: ServeEmulator,
    session: aiohttp.ClientSession,
    history: list[dict[str, Any]],
    **settings: Any,
) -> tuple[InProcessEmulator, CountingReader]:
    topology = Topology(accept_any=True)
    emulator = await serve_emulator(
        clock=ManualClock(NOW.timestamp()),
        history=parse_history(history, topology, source="history"),
        **settings,
    )
    return emulator, CountingReader(emulator_client(session, emulator.url))


async def search(reader: CountingReader, runs: list[RunSpec], **options: Any) -> Search:
    return await find_succeeded(
        reader,
        runs,
        settings=OnlyMissing(since=options.pop("since", SINCE)),
        retry=options.pop("retry", FAST_RETRY),
        now=lambda: NOW,
        **options,
    )


def queries(emulator: InProcessEmulator) -> int:
    return sum(emulator.state.stats.requests.get("queryPipelineRuns", {}).values())


async def test_a_succeeded_run_with_our_parameters_among_its_own_is_found(
    serve_emulator: ServeEmulator, session: aiohttp.ClientSession
) -> None:
    done = past("2026-11-20", parameters={"run_date": "2026-11-20", "partition": 7, "full": True})
    _, reader = await adf(serve_emulator, session, [done])
    found = await search(
        reader,
        [
            spec("2026-11-20", parameters={"run_date": "2026-11-20", "partition": 7.0}),
            spec("other", parameters={"run_date": "2026-11-20", "partition": 8}),
            spec("2026-11-21"),
        ],
    )
    # ADF's "7" is our 7.0 by value; its extra "full" (a default, say) does not matter
    assert found.found == {"2026-11-20": AlreadySucceeded(done["runId"], NOW - timedelta(days=1))}
    assert found.searched == 3


@pytest.mark.parametrize(
    ("status", "ended", "why"),
    [
        ("Failed", NOW - timedelta(days=1), "it did not succeed"),
        ("Cancelled", NOW - timedelta(days=1), "it did not succeed"),
        ("Succeeded", SINCE - timedelta(minutes=1), "it ended before --since"),
    ],
)
async def test_a_run_that_failed_or_ended_before_since_is_not_found(
    serve_emulator: ServeEmulator,
    session: aiohttp.ClientSession,
    status: str,
    ended: datetime,
    why: str,
) -> None:
    _, reader = await adf(serve_emulator, session, [past("d1", status=status, ended=ended)])
    found = await search(reader, [spec("d1", parameters={"run_date": "d1"})])
    assert found.found == {}, why


async def test_a_run_updated_since_but_ended_before_is_not_found(
    serve_emulator: ServeEmulator, session: aiohttp.ClientSession
) -> None:
    # ADF lists it (lastUpdated is in the window) but it ended before --since
    late = past("d1", ended=SINCE - timedelta(hours=1)) | {"lastUpdated": NOW.isoformat()}
    _, reader = await adf(serve_emulator, session, [late])
    found = await search(reader, [spec("d1")])
    assert found.found == {} and found.reads == 1


async def test_a_run_ended_just_after_since_is_found(
    serve_emulator: ServeEmulator, session: aiohttp.ClientSession
) -> None:
    done = past("d1", ended=SINCE + timedelta(minutes=1))
    _, reader = await adf(serve_emulator, session, [done])
    found = await search(reader, [spec("d1")])
    assert found.found["d1"].run_id == done["runId"]


async def test_the_pipeline_name_is_matched_whatever_its_case(
    serve_emulator: ServeEmulator, session: aiohttp.ClientSession
) -> None:
    done = past("d1", pipeline="LOADORDERS")
    _, reader = await adf(serve_emulator, session, [done, past("d1", pipeline="BuildMarts")])
    found = await search(reader, [spec("d1", pipeline="loadOrders")])
    assert found.found["d1"].run_id == done["runId"]


async def test_a_recovery_entry_is_never_skipped(
    serve_emulator: ServeEmulator, session: aiohttp.ClientSession
) -> None:
    _, reader = await adf(serve_emulator, session, [past("d1"), past("d1")])
    reference = str(uuid.uuid4())
    found = await search(
        reader,
        [
            spec("d1", reference_run_id=reference, is_recovery=True),
            spec("d1-rerun", parameters={"run_date": "d1"}, reference_run_id=reference),
        ],
    )
    assert found.found == {}
    assert found.searched == 0 and found.reads == 0 and reader.factories == []


async def test_an_entry_that_says_is_recovery_false_is_an_ordinary_run(
    serve_emulator: ServeEmulator, session: aiohttp.ClientSession
) -> None:
    # no reference run: createRun starts a new run like any other, so ADF's success counts
    done = past("d1")
    _, reader = await adf(serve_emulator, session, [done])
    found = await search(reader, [spec("d1", parameters={"run_date": "d1"}, is_recovery=False)])
    assert found.found["d1"].run_id == done["runId"]


async def test_each_adf_run_stands_for_one_entry_only(
    serve_emulator: ServeEmulator, session: aiohttp.ClientSession
) -> None:
    older = past("d1", ended=NOW - timedelta(days=2))
    newer = past("d1", ended=NOW - timedelta(hours=2))
    _, reader = await adf(serve_emulator, session, [older, past("d2"), newer])
    twins = [spec(f"d1-{n}", parameters={"run_date": "d1"}) for n in "abc"]
    found = await search(reader, twins)
    # two runs in ADF for three identical entries: two are skipped, the latest first
    assert {k: v.run_id for k, v in found.found.items()} == {
        "d1-a": newer["runId"],
        "d1-b": older["runId"],
    }


async def test_a_run_claimed_by_this_batch_stands_for_no_other_entry(
    serve_emulator: ServeEmulator, session: aiohttp.ClientSession
) -> None:
    ours = past("d1")
    _, reader = await adf(serve_emulator, session, [ours])
    found = await search(reader, [spec("d1-twin", parameters={"run_date": "d1"})],
                         claimed=[ours["runId"].upper()])  # fmt: skip
    assert found.found == {}


async def test_one_paged_query_per_factory_for_all_its_pipelines(
    serve_emulator: ServeEmulator, session: aiohttp.ClientSession
) -> None:
    history = [
        past(f"2026-10-{day:02}", factory=factory, pipeline=pipeline)
        for factory in ("factory-0", "factory-1", "factory-2")
        for pipeline in ("LoadOrders", "BuildMarts")
        for day in range(1, 31)
    ]
    emulator, reader = await adf(serve_emulator, session, history)
    runs = [
        spec(f"{factory}.{pipeline}.{day}", factory=factory.upper(), pipeline=pipeline,
             parameters={"run_date": f"2026-10-{day:02}"})
        for factory in ("factory-0", "factory-1", "factory-2")
        for pipeline in ("LoadOrders", "BuildMarts")
        for day in range(1, 33)
    ]  # fmt: skip
    found = await search(reader, runs)
    assert len(found.found) == 3 * 2 * 30  # days 31 and 32 never ran
    assert queries(emulator) == found.reads == 3
    assert sorted(name.casefold() for name in reader.factories) == [
        "factory-0",
        "factory-1",
        "factory-2",
    ]


async def test_a_factory_with_more_than_a_page_is_read_to_the_end(
    serve_emulator: ServeEmulator, session: aiohttp.ClientSession
) -> None:
    history = [past(f"p{n}", parameters={"partition": n}) for n in range(250)]
    emulator, reader = await adf(serve_emulator, session, history)
    runs = [spec(f"p{n}", parameters={"partition": n}) for n in range(260)]
    found = await search(reader, runs)
    assert len(found.found) == 250 and "p249" in found.found and "p250" not in found.found
    # the emulator's pages hold 100 runs: 3 pages, one query
    assert queries(emulator) == found.reads == 3


async def test_a_read_that_keeps_failing_stops_before_anything_is_sent(
    serve_emulator: ServeEmulator, session: aiohttp.ClientSession
) -> None:
    emulator, reader = await adf(
        serve_emulator, session, [past("d1")], fail_500=1.0, faults_on_reads=True
    )
    with pytest.raises(ApiError) as failed:
        await search(reader, [spec("d1")])
    assert failed.value.code == ONLY_MISSING_FAILED
    assert "nothing was sent" in failed.value.message
    assert queries(emulator) == FAST_RETRY.max_attempts
    assert emulator.state.stats.runs_created == 0


async def test_leaving_out_writes_a_skipped_line_with_the_existing_run(tmp_path: Path) -> None:
    run_id = str(uuid.uuid4())
    found = Search(found={"d2": AlreadySucceeded(run_id, NOW)}, searched=3)
    todo = [spec("d1"), spec("d2"), spec("d3")]
    progress = Progress(total=3)
    report = tmp_path / "report.jsonl"
    with ReportWriter.open(report, resume=False) as writer:
        found.leave_out(todo, writer, progress)
    assert [s.id for s in todo] == ["d1", "d3"]
    assert (progress.done, progress.skipped) == (1, 1)
    [line] = list(read_records(report))
    assert line["id"] == "d2" and line["status"] == "skipped" and line["run_id"] == run_id
    assert line["already_succeeded"] is True
    assert line["reason"] == f"already succeeded in ADF (run {run_id}, ended 2026-11-26T08:00:00Z)"


def test_resume_counts_a_run_found_already_succeeded_as_done(tmp_path: Path) -> None:
    run_id = str(uuid.uuid4())
    report = tmp_path / "report.jsonl"
    runs = [spec("d1"), spec("d2")]
    identity = BatchIdentity("fingerprint", str(tmp_path / "m.yaml"), None)
    with (
        Journal.open(report, identity, resume=False),
        ReportWriter.open(report, resume=False) as writer,
    ):
        Search(found={"d1": AlreadySucceeded(run_id, NOW)}).leave_out(
            list(runs), writer, Progress(total=2)
        )
    settings = BatchSettings(report=report, endpoint="http://127.0.0.1:1", resume=True)
    resumed = resumption(runs, settings, identity)
    assert [s.id for s in resumed.todo] == ["d2"]
    assert resumed.already_succeeded == 1
    assert resumed.claimed == {run_id}
