"""The preflight against the in-process emulator: what it reads, how often, and what it says."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from batchrun.arm.client import AdfClient
from batchrun.arm.retry import RetrySettings
from batchrun.arm.timeouts import Timeouts
from batchrun.emulator.config import parse_config
from batchrun.emulator.history import parse_history
from batchrun.model import RunSpec, position
from batchrun.run.declared import QUEUE_CAP, Definition, parameter_problems
from batchrun.run.preflight import Preflight, PreflightSettings, preflight
from tests.helpers.tokens import StaticTokens

if TYPE_CHECKING:
    from tests.helpers.emulator import InProcessEmulator, ServeEmulator

SUB = "11111111-1111-1111-1111-111111111111"
FACTORY_PATH = (
    f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.DataFactory/factories/"
)
TOPOLOGY: dict[str, Any] = {
    "subscriptions": {
        SUB: {
            "resource_groups": {
                "rg-data": {
                    "factories": {
                        "sales-eu": {
                            "pipelines": {
                                "LoadOrders": {
                                    "parameters": {
                                        "run_date": {"type": "String"},
                                        "region": {"type": "String", "defaultValue": "eu"},
                                    }
                                },
                                "Export": {"parameters": {}, "concurrency": 2},
                                "Plain": {},
                            }
                        }
                    }
                }
            }
        }
    }
}
REFERENCE = "2f7fdb90-5df1-4b8e-ac2f-064cfa58202b"
HISTORY = [
    {
        "factory": FACTORY_PATH + "sales-eu",
        "pipelineName": "LoadOrders",
        "runId": REFERENCE,
        "status": "Failed",
        "runStart": "2026-11-25T22:00:00Z",
        "runEnd": "2026-11-25T22:01:00Z",
    }
]
SETTINGS = PreflightSettings(retry=RetrySettings(max_attempts=2), concurrency=4)
Check = Callable[..., Any]


def spec(
    line: int, *, factory: str = "sales-eu", pipeline: str = "LoadOrders", **kw: Any
) -> RunSpec:
    parameters = kw.pop("parameters", {"run_date": "2026-11-26"})
    return RunSpec(
        id=f"run-{line}",
        subscription=SUB,
        resource_group="rg-data",
        factory=factory,
        pipeline=pipeline,
        parameters=parameters,
        file="m.yaml",
        at=position(line, 5),
        **kw,
    )


@pytest.fixture
async def adf(serve_emulator: ServeEmulator) -> InProcessEmulator:
    topology = parse_config(TOPOLOGY, source="test").topology
    return await serve_emulator(topology, history=parse_history(HISTORY, topology, source="h"))


@pytest.fixture
async def check(adf: InProcessEmulator) -> AsyncIterator[Check]:
    async with aiohttp.ClientSession() as session:

        async def run(runs: list[RunSpec], *, token: str = "test-token") -> Preflight:
            client = AdfClient(
                session=session, endpoint=adf.url, tokens=StaticTokens(token), timeouts=Timeouts()
            )
            return await preflight(client, runs, settings=SETTINGS)

        yield run


async def test_a_clean_manifest_has_no_findings_and_reads_each_pipeline_once(check: Check) -> None:
    runs = [spec(line) for line in range(3, 50)] + [spec(60, pipeline="loadorders")]
    result = await check(runs)
    assert result.findings == ()
    assert (result.factories, result.pipelines, result.reads) == (1, 1, 1)


async def test_each_kind_of_finding_is_at_its_entry_with_what_adf_said(check: Check) -> None:
    result = await check(
        [
            spec(3, pipeline="Gone"),
            spec(4, parameters={"run_date": "x", "regoin": "us"}),
            spec(5, parameters={"region": "us"}),
            spec(6, pipeline="Plain", parameters={"anything": 1}),
        ]
    )
    assert [str(finding) for finding in result.findings] == [
        "m.yaml:3:5: pipeline Gone does not exist in factory sales-eu: ADF said 404 "
        "PipelineNotFound: Pipeline 'Gone' was not found in factory 'sales-eu'.",
        "m.yaml:4:5: parameter 'regoin' is not declared by pipeline LoadOrders (it declares: "
        "region, run_date); did you mean 'region'?",
        "m.yaml:5:5: pipeline LoadOrders declares 'run_date' without a default value, and this "
        "entry does not send it",
        "m.yaml:6:5: parameter 'anything' is not declared by pipeline Plain (it declares: none)",
    ]


async def test_parameter_names_are_matched_without_regard_to_case(check: Check) -> None:
    result = await check([spec(3, parameters={"RUN_DATE": "x", "Region": "us"})])
    assert result.findings == ()


async def test_a_missing_factory_is_read_once_and_named_at_every_entry(check: Check) -> None:
    runs = [spec(3, factory="sales-apac"), spec(4, factory="sales-apac", pipeline="Export")]
    result = await check(runs)
    assert result.reads == 1
    assert [f.source for f in result.findings] == ["m.yaml:3:5", "m.yaml:4:5"]
    assert all("factory sales-apac" in f.message for f in result.findings)
    assert all(
        "does not exist: ADF said 404 ResourceNotFound" in f.message for f in result.findings
    )


async def test_runs_of_one_entry_count_as_one_finding(check: Check) -> None:
    result = await check([spec(3, pipeline="Gone"), spec(3, pipeline="Gone")])
    assert len(result.findings) == 1
    assert result.findings[0].runs == 2
    assert str(result.findings[0]).endswith("(2 runs)")


@pytest.mark.parametrize(("runs", "flagged"), [(2 + QUEUE_CAP, False), (3 + QUEUE_CAP, True)])
async def test_a_pipeline_with_concurrency_is_flagged_past_what_adf_holds(
    check: Check, runs: int, flagged: bool
) -> None:
    result = await check(
        [spec(line, pipeline="Export", parameters={}) for line in range(3, 3 + runs)]
    )
    if not flagged:
        assert result.findings == ()
        return
    (finding,) = result.findings
    # the first run past 2 running and 100 queued
    assert finding.source == f"m.yaml:{3 + 2 + QUEUE_CAP}:5"
    assert "concurrency 2" in finding.message
    assert f"sends it {runs} runs" in finding.message
    assert "1 would be refused ('Pipeline execution throttled')" in finding.message


async def test_reference_runs_must_exist_and_be_runs_of_the_entry_pipeline(check: Check) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    result = await check(
        [
            spec(3, reference_run_id=REFERENCE, is_recovery=True),
            spec(4, reference_run_id=missing, is_recovery=True),
            spec(5, pipeline="Export", parameters={}, reference_run_id=REFERENCE),
        ]
    )
    messages = {f.source: f.message for f in result.findings}
    assert set(messages) == {"m.yaml:4:5", "m.yaml:5:5"}
    assert messages["m.yaml:4:5"].startswith(f"reference run {missing} does not exist")
    assert "ADF said 404" in messages["m.yaml:4:5"]
    assert messages["m.yaml:5:5"].startswith(
        f"reference run {REFERENCE} is a run of pipeline LoadOrders, not Export"
    )
    assert result.reference_runs == 2


async def test_a_rejected_token_stops_the_reads(
    serve_emulator: ServeEmulator,
) -> None:
    topology = parse_config(TOPOLOGY, source="test").topology
    adf = await serve_emulator(topology, expect_token="the-right-token")
    async with aiohttp.ClientSession() as session:
        client = AdfClient(
            session=session, endpoint=adf.url, tokens=StaticTokens("a-wrong-token"),
            timeouts=Timeouts(),
        )  # fmt: skip
        result = await preflight(
            client, [spec(3), spec(4, pipeline="Export"), spec(5, pipeline="Plain")],
            settings=PreflightSettings(retry=RetrySettings(), concurrency=1),
        )  # fmt: skip
    assert result.auth_error is not None and result.auth_error.status == 401
    assert result.reads == 1
    assert result.findings == ()


def test_a_rerun_has_no_parameters_to_check() -> None:
    pipeline = Definition("P", {"required": False}, None)
    assert parameter_problems(spec(3, reference_run_id=REFERENCE), pipeline) == []
    assert len(parameter_problems(spec(3), pipeline)) == 2


def test_a_definition_reads_the_spec_shape_and_tolerates_a_sparse_one() -> None:
    resource = {
        "name": "LoadOrders",
        "properties": {
            "parameters": {"a": {"type": "String", "defaultValue": ""}, "b": {"type": "Int"}},
            "concurrency": 3,
        },
    }
    assert Definition.from_resource(resource, asked="loadorders") == Definition(
        "LoadOrders", {"a": True, "b": False}, 3
    )
    assert Definition.from_resource({}, asked="X") == Definition("X", {}, None)
