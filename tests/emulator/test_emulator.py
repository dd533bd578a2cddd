"""The ADF emulator over real HTTP on 127.0.0.1: wire shapes, ARM behaviour, faults, CLI."""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import pytest
from jsonschema import Draft4Validator
from yarl import URL

from batchrun.emulator.clock import SystemClock
from batchrun.emulator.config import (
    ConfigError,
    FactorySpec,
    PipelineSpec,
    Topology,
    load_config,
    parse_config,
)
from batchrun.emulator.history import load_history
from batchrun.emulator.limits import HourlyWindow, TokenBucket
from batchrun.emulator.wire import format_time, parse_time
from tests.helpers.emulator import InProcessEmulator, ServeEmulator, StartEmulator, emulator_exit
from tests.helpers.paths import DATA, ROOT

if TYPE_CHECKING:
    from pathlib import Path

DEMO_CONFIG = ROOT / "configs" / "demo-emulator.yaml"
SPEC = json.loads((DATA / "adf-openapi-subset.json").read_text())

SUB = "11111111-1111-1111-1111-111111111111"
RG = "rg-data"
FACTORY = "sales-eu"
AUTH = {"Authorization": "Bearer test-token"}
WIDE = {"lastUpdatedAfter": "2000-01-01T00:00:00Z", "lastUpdatedBefore": "2100-01-01T00:00:00Z"}
# the headers of the 200 in examples/Pipelines_CreateRun.json
EXAMPLE_HEADERS = (
    "Date",
    "X-Content-Type-Options",
    "x-ms-ratelimit-remaining-subscription-writes",
    "x-ms-request-id",
    "x-ms-correlation-request-id",
)
ADF_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")


def _definitions() -> dict[str, Any]:
    definitions: dict[str, Any] = copy.deepcopy(SPEC["definitions"])
    # ADF answers null for an unfinished run's runEnd and durationInMs (the query example in the
    # reference does); the swagger has no x-nullable to say so.
    run = definitions["PipelineRun"]["properties"]
    run["runEnd"]["type"] = ["string", "null"]
    run["durationInMs"]["type"] = ["integer", "null"]
    return definitions


DEFINITIONS = _definitions()


def check(definition: str, instance: Any) -> Any:
    """Validate against the spec's definition; ADF timestamps must have 7 fractional digits."""
    schema = {"$ref": f"#/definitions/{definition}", "definitions": DEFINITIONS}
    Draft4Validator(schema).validate(instance)
    runs = instance.get("value", [instance]) if definition.startswith("Pipeline") else []
    for run in runs:
        for name in ("lastUpdated", "runStart", "runEnd"):
            assert run[name] is None or ADF_TIME.match(run[name]), (name, run[name])
    return instance


def factory_url(
    base: str, *, sub: str = SUB, rg: str = RG, factory: str = FACTORY, api: str | None = None
) -> str:
    path = f"/subscriptions/{quote(sub, safe='')}/resourceGroups/{quote(rg, safe='')}"
    path += f"/providers/Microsoft.DataFactory/factories/{quote(factory, safe='')}"
    return base + path


class Adf:
    """Just enough of an ADF client to test the emulator with."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        api_version: str | None = "2018-06-01",
        **where: str,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        params = dict(query or {})
        if api_version is not None:
            params["api-version"] = api_version
        url = URL(factory_url(self.base, **where) + path, encoded=True).update_query(params)
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        async with self.session.request(
            method, url, data=data, headers={**AUTH, **(headers or {})}
        ) as response:
            text = await response.text()
            payload = json.loads(text) if text and "json" in response.content_type else text
            return response.status, payload, response

    async def create(
        self, pipeline: str = "LoadOrders", parameters: Any = None, **kwargs: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        body = {} if parameters is None else parameters
        path = f"/pipelines/{quote(pipeline, safe='')}/createRun"
        return await self.call("POST", path, body=body, **kwargs)

    async def run_id(self, pipeline: str = "LoadOrders", parameters: Any = None, **kw: Any) -> str:
        status, body, _ = await self.create(pipeline, parameters, **kw)
        assert status == 200, body
        return str(check("CreateRunResponse", body)["runId"])

    async def query(self, body: dict[str, Any], **kwargs: Any) -> tuple[int, Any]:
        Draft4Validator(
            {"$ref": "#/definitions/RunFilterParameters", "definitions": DEFINITIONS}
        ).validate(body)
        status, answer, _ = await self.call("POST", "/queryPipelineRuns", body=body, **kwargs)
        return status, answer

    async def runs(self, *filters: dict[str, Any], **extra: Any) -> list[dict[str, Any]]:
        status, answer = await self.query({**WIDE, "filters": list(filters), **extra})
        assert status == 200, answer
        return list(check("PipelineRunsQueryResponse", answer)["value"])

    async def get(self, run_id: str) -> tuple[int, Any]:
        status, body, _ = await self.call("GET", f"/pipelineruns/{run_id}")
        if status == 200:
            check("PipelineRun", body)
        return status, body

    async def cancel(self, run_id: str) -> tuple[int, Any]:
        status, body, _ = await self.call("POST", f"/pipelineruns/{run_id}/cancel")
        return status, body


def where(operand: str, operator: str, *values: str) -> dict[str, Any]:
    return {"operand": operand, "operator": operator, "values": list(values)}


def error_code(status_body: tuple[int, Any], status: int) -> str:
    got, body = status_body[0], status_body[1]
    assert got == status, body
    return str(check("CloudError", body)["error"]["code"])


DEMO_PIPELINES = {
    name.casefold(): PipelineSpec(name, frozenset({"partition", "region", "run_date"}))
    for name in ("LoadOrders", "BuildMarts")
}
TOPOLOGY = Topology(
    {
        spec.key: spec
        for spec in (
            FactorySpec(SUB, RG, FACTORY, DEMO_PIPELINES),
            FactorySpec(SUB, RG, "sales-us", {"free": PipelineSpec("Free")}),
        )
    }
)


@pytest.fixture
async def adf_for(serve_emulator: ServeEmulator, session: aiohttp.ClientSession) -> Any:
    """adf_for(topology=None, **settings) -> (Adf, InProcessEmulator)."""

    async def start(
        topology: Topology | None = None, **settings: Any
    ) -> tuple[Adf, InProcessEmulator]:
        served = await serve_emulator(topology, **settings)
        return Adf(session, served.url), served

    return start


AdfFor = Callable[..., Any]


# --- createRun ---------------------------------------------------------------------------------


async def test_create_run_answers_like_the_example(adf_for: AdfFor) -> None:
    adf, served = await adf_for(TOPOLOGY)
    status, body, response = await adf.create(parameters={"partition": 1})
    assert status == 200
    assert uuid.UUID(check("CreateRunResponse", body)["runId"])
    assert set(body) == {"runId"}
    for header in EXAMPLE_HEADERS:
        assert header in response.headers, header
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["x-ms-ratelimit-remaining-subscription-writes"] == "199"
    assert response.headers["x-ms-ratelimit-remaining-subscription-global-writes"] == "2999"
    assert response.headers["x-ms-correlation-request-id"] == response.headers["x-ms-request-id"]
    assert served.state.stats.runs_created == 1


async def test_client_request_id_does_not_become_the_correlation_id(adf_for: AdfFor) -> None:
    # ARM makes its own correlation id unless the caller sent x-ms-correlation-request-id
    adf, _ = await adf_for()
    _, _, response = await adf.create(headers={"x-ms-client-request-id": "abc-123"})
    assert response.headers["x-ms-correlation-request-id"] != "abc-123"
    assert uuid.UUID(response.headers["x-ms-correlation-request-id"])
    assert response.headers["x-ms-client-request-id"] == "abc-123"
    assert response.headers["x-ms-request-id"] != "abc-123"


@pytest.mark.parametrize(
    ("api_version", "code"),
    [(None, "MissingApiVersionParameter"), ("2017-09-01-preview", "InvalidApiVersionParameter")],
)
async def test_api_version_is_required(adf_for: AdfFor, api_version: str | None, code: str) -> None:
    adf, served = await adf_for()
    status, body, _ = await adf.create(api_version=api_version)
    assert error_code((status, body), 400) == code
    assert served.state.stats.runs_created == 0


@pytest.mark.parametrize(
    ("where_", "pipeline", "target"),
    [
        ({"factory": "ab"}, "LoadOrders", "factoryName"),
        ({"factory": "-sales"}, "LoadOrders", "factoryName"),
        ({"factory": "sales_eu"}, "LoadOrders", "factoryName"),
        ({"factory": "a" * 64}, "LoadOrders", "factoryName"),
        ({"rg": "rg*data"}, "LoadOrders", "resourceGroupName"),
        ({"rg": "r" * 91}, "LoadOrders", "resourceGroupName"),
        ({}, "Load.Orders", "pipelineName"),
        ({}, "Load:Orders", "pipelineName"),
        ({}, "-x?", "pipelineName"),
        ({}, "p" * 261, "pipelineName"),
    ],
)
async def test_names_breaking_the_spec_are_400(
    adf_for: AdfFor, where_: dict[str, str], pipeline: str, target: str
) -> None:
    adf, _ = await adf_for()
    status, body, _ = await adf.create(pipeline, **where_)
    assert error_code((status, body), 400) == "BadRequest"
    assert body["error"]["target"] == target


@pytest.mark.parametrize(
    ("where_", "pipeline", "code"),
    [
        ({"sub": "99999999-9999-9999-9999-999999999999"}, "LoadOrders", "SubscriptionNotFound"),
        ({"rg": "rg-other"}, "LoadOrders", "ResourceGroupNotFound"),
        ({"factory": "sales-apac"}, "LoadOrders", "ResourceNotFound"),
        ({}, "LoadRefunds", "PipelineNotFound"),
    ],
)
async def test_unknown_resources_are_404(
    adf_for: AdfFor, where_: dict[str, str], pipeline: str, code: str
) -> None:
    adf, served = await adf_for(TOPOLOGY)
    assert error_code(await adf.create(pipeline, **where_), 404) == code
    assert served.state.stats.runs_created == 0


async def test_names_are_case_insensitive(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(TOPOLOGY)
    status, body, _ = await adf.create("loadorders", factory="SALES-EU", rg="RG-Data")
    assert status == 200, body
    [run] = await adf.runs()
    assert run["pipelineName"] == "LoadOrders"


@pytest.mark.parametrize("raw", [b"[1]", b'"x"', b"3", b"null", b"not json", b"{", b"\xff"])
async def test_a_body_that_is_not_an_object_is_400(adf_for: AdfFor, raw: bytes) -> None:
    adf, served = await adf_for()
    status, body, _ = await adf.call("POST", "/pipelines/p/createRun", raw=raw)
    assert error_code((status, body), 400) == "BadRequest"
    assert served.state.stats.runs_created == 0


@pytest.mark.parametrize("raw", [b"", b"  \n", b"{}"])
async def test_an_empty_body_means_no_parameters(adf_for: AdfFor, raw: bytes) -> None:
    adf, _ = await adf_for()
    status, _, _ = await adf.call("POST", "/pipelines/p/createRun", raw=raw)
    assert status == 200
    [run] = await adf.runs()
    assert run["parameters"] == {}


async def test_undeclared_parameters_are_rejected_by_name(adf_for: AdfFor) -> None:
    adf, served = await adf_for(TOPOLOGY)
    status, body, _ = await adf.create(parameters={"partition": 1, "regoin": "eu"})
    assert error_code((status, body), 400) == "BadRequest"
    assert "'regoin'" in body["error"]["message"]
    assert served.state.stats.runs_created == 0
    # a pipeline without declared parameters takes any
    assert (await adf.create("Free", {"anything": 1}, factory="sales-us"))[0] == 200


@pytest.mark.parametrize("value", ["yes", "1", ""])
async def test_booleans_are_true_or_false(adf_for: AdfFor, value: str) -> None:
    adf, _ = await adf_for()
    run_id = await adf.run_id("p")
    query = {"referencePipelineRunId": run_id, "isRecovery": value}
    assert error_code(await adf.create("p", query=query), 400) == "BadRequest"
    query["isRecovery"] = "True"  # case does not matter
    assert (await adf.create("p", query=query))[0] == 200


# --- recovery ----------------------------------------------------------------------------------


async def test_recovery_runs_join_the_group_and_become_latest(adf_for: AdfFor) -> None:
    adf, _ = await adf_for()
    first = await adf.run_id("p", {"day": "2026-11-01"})
    query = {"referencePipelineRunId": first, "isRecovery": "true", "startFromFailure": "true"}
    second = await adf.run_id("p", {"ignored": True}, query=query)
    third = await adf.run_id("p", query={"referencePipelineRunId": second, "isRecovery": "true"})

    group = {run["runId"]: run for run in await adf.runs(where("RunGroupId", "Equals", first))}
    assert set(group) == {first, second, third}
    assert {run["runGroupId"] for run in group.values()} == {first}
    assert [group[i]["isLatest"] for i in (first, second, third)] == [False, False, True]
    # the reference run's parameters are used, the body is not
    assert group[third]["parameters"] == {"day": "2026-11-01"}
    latest = await adf.runs(where("LatestOnly", "Equals", "true"))
    assert [run["runId"] for run in latest] == [third]


async def test_a_reference_without_recovery_reuses_parameters_in_a_new_group(
    adf_for: AdfFor,
) -> None:
    adf, _ = await adf_for()
    first = await adf.run_id("p", {"day": "2026-11-01"})
    again = await adf.run_id("p", {"day": "other"}, query={"referencePipelineRunId": first})
    runs = {run["runId"]: run for run in await adf.runs()}
    assert runs[again]["runGroupId"] == again
    assert runs[again]["parameters"] == {"day": "2026-11-01"}
    assert runs[first]["isLatest"] and runs[again]["isLatest"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"referencePipelineRunId": str(uuid.UUID(int=7))}, "ReferencedPipelineRunNotValid"),
        (
            {"referencePipelineRunId": "OTHER", "isRecovery": "true"},
            "ReferencedPipelineRunNotValid",
        ),
        ({"isRecovery": "true"}, "BadRequest"),
    ],
)
async def test_recovery_needs_a_run_of_the_same_pipeline(
    adf_for: AdfFor, query: dict[str, str], code: str
) -> None:
    adf, served = await adf_for()
    other = await adf.run_id("other-pipeline")
    query = {k: other if v == "OTHER" else v for k, v in query.items()}
    assert error_code(await adf.create("p", query=query), 400) == code
    assert served.state.stats.runs_created == 1


# --- query -------------------------------------------------------------------------------------


async def test_parameters_come_back_as_strings(adf_for: AdfFor) -> None:
    adf, _ = await adf_for()
    parameters = {
        "s": "x",
        "n": 5,
        "f": 1.5,
        "b": True,
        "l": ["exampleoutput.csv", 1],
        "o": {"k": "v", "z": [None]},
        "nothing": None,
    }
    run_id = await adf.run_id("p", parameters)
    _, run = await adf.get(run_id)
    assert run["parameters"] == {
        "s": "x",
        "n": "5",
        "f": "1.5",
        "b": "true",
        "l": '["exampleoutput.csv",1]',
        "o": '{"k":"v","z":[null]}',
        "nothing": "null",
    }


async def test_query_filters_with_all_four_operators(adf_for: AdfFor) -> None:
    adf, served = await adf_for(run_queued_ms=1000, run_duration_ms=10_000)
    orders = [await adf.run_id("LoadOrders")]
    served.manual_clock.advance(0.1)
    orders.append(await adf.run_id("LoadOrders"))
    served.manual_clock.advance(1.5)  # both InProgress
    marts = await adf.run_id("BuildMarts")  # Queued

    async def ids(*filters: dict[str, Any]) -> set[str]:
        return {run["runId"] for run in await adf.runs(*filters)}

    assert await ids(where("PipelineName", "Equals", "LoadOrders")) == set(orders)
    assert await ids(where("PipelineName", "NotEquals", "loadorders")) == {marts}
    assert await ids(where("PipelineName", "In", "LoadOrders", "BuildMarts")) == {*orders, marts}
    assert await ids(where("PipelineName", "NotIn", "LoadOrders", "BuildMarts")) == set()
    assert await ids(where("Status", "Equals", "InProgress")) == set(orders)
    assert await ids(where("Status", "NotEquals", "InProgress")) == {marts}
    assert await ids(where("Status", "In", "Queued", "Failed")) == {marts}
    assert await ids(where("Status", "NotIn", "Queued")) == set(orders)
    assert (
        await ids(
            where("PipelineName", "Equals", "LoadOrders"), where("Status", "Equals", "Queued")
        )
        == set()
    )
    _, first = await adf.get(orders[0])
    assert await ids(where("RunStart", "Equals", first["runStart"])) == {orders[0]}
    assert await ids(where("RunStart", "NotIn", first["runStart"])) == {orders[1], marts}
    assert await ids(where("RunEnd", "Equals", first["runStart"])) == set()


async def test_query_rejects_bad_filters(adf_for: AdfFor) -> None:
    adf, _ = await adf_for()
    for body in (
        {"lastUpdatedBefore": WIDE["lastUpdatedBefore"]},
        {**WIDE, "lastUpdatedAfter": "yesterday"},
        {**WIDE, "filters": [where("Status", "Equals", "Done")]},
        {**WIDE, "filters": [where("Status", "GreaterThan", "Failed")]},
        {**WIDE, "filters": [where("ActivityName", "Equals", "Copy")]},
        {**WIDE, "orderBy": [{"orderBy": "RunStart", "order": "UP"}]},
        {**WIDE, "continuationToken": "garbage!"},
        # a well-formed token whose key does not fit the query
        {
            **WIDE,
            "continuationToken": "eyJhZnRlciI6WyJ4IiwxXSwib3JkZXIiOltbIlJ1blN0YXJ0IixmYWxzZV1dfQ",
        },
    ):
        status, answer, _ = await adf.call("POST", "/queryPipelineRuns", body=body)
        assert error_code((status, answer), 400) == "BadRequest", body
    assert error_code((await adf.call("POST", "/queryPipelineRuns"))[:2], 400) == "BadRequest"


async def test_query_keeps_to_the_last_updated_window(adf_for: AdfFor) -> None:
    adf, served = await adf_for(run_queued_ms=1000, run_duration_ms=1000)
    run_id = await adf.run_id("p")
    _, run = await adf.get(run_id)
    window = {"lastUpdatedAfter": run["lastUpdated"], "lastUpdatedBefore": run["lastUpdated"]}
    assert [r["runId"] for r in (await adf.query(window))[1]["value"]] == [run_id]
    served.manual_clock.advance(5)  # finished: lastUpdated moved on
    assert (await adf.query(window))[1]["value"] == []


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ([{"orderBy": "PipelineName", "order": "DESC"}], ["c", "b", "a"]),
        ([{"orderBy": "PipelineName", "order": "ASC"}], ["a", "b", "c"]),
        ([{"orderBy": "RunStart", "order": "DESC"}], ["a", "c", "b"]),
        ([{"orderBy": "RunStart", "order": "ASC"}], ["b", "c", "a"]),
        (None, ["b", "c", "a"]),
        # b Succeeded, c InProgress, a Queued by then
        ([{"orderBy": "Status", "order": "ASC"}], ["c", "a", "b"]),
    ],
)
async def test_query_orders_runs(
    adf_for: AdfFor, order: list[dict[str, str]] | None, expected: list[str]
) -> None:
    adf, served = await adf_for(run_queued_ms=1000, run_duration_ms=1000)
    for name in ("b", "c", "a"):
        await adf.run_id(name)
        served.manual_clock.advance(0.9)
    extra = {} if order is None else {"orderBy": order}
    assert [run["pipelineName"] for run in await adf.runs(**extra)] == expected


async def test_query_pages_by_100_with_a_continuation_token(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(write_burst=1000)
    created = {await adf.run_id(f"p{i % 3}", {"i": i}) for i in range(250)}
    body: dict[str, Any] = {**WIDE, "orderBy": [{"orderBy": "PipelineName", "order": "ASC"}]}
    pages: list[list[str]] = []
    while True:
        status, answer = await adf.query(body)
        assert status == 200, answer
        check("PipelineRunsQueryResponse", answer)
        pages.append([run["runId"] for run in answer["value"]])
        if "continuationToken" not in answer:
            break
        body["continuationToken"] = answer["continuationToken"]
    assert [len(page) for page in pages] == [100, 100, 50]
    seen = [run_id for page in pages for run_id in page]
    assert len(seen) == len(set(seen)) and set(seen) == created
    body["orderBy"] = [{"orderBy": "RunStart", "order": "ASC"}]
    assert error_code(await adf.query(body), 400) == "BadRequest"


# --- time: visibility, lifecycle, cancel -------------------------------------------------------


async def test_a_new_run_is_invisible_until_the_visibility_delay_passes(adf_for: AdfFor) -> None:
    adf, served = await adf_for(visibility_delay_ms=2000)
    run_id = await adf.run_id("p")
    assert error_code(await adf.get(run_id), 404) == "PipelineRunNotFound"
    assert await adf.runs() == []
    served.manual_clock.advance(1.999)
    assert await adf.runs() == []
    served.manual_clock.advance(0.001)
    assert (await adf.get(run_id))[0] == 200
    assert [run["runId"] for run in await adf.runs()] == [run_id]


async def test_runs_move_through_their_states_over_time(adf_for: AdfFor) -> None:
    adf, served = await adf_for(run_queued_ms=1000, run_duration_ms=2000)
    clock = served.manual_clock
    run_id = await adf.run_id("p")
    _, run = await adf.get(run_id)
    start = parse_time(run["runStart"], field="runStart")
    assert (run["status"], run["runEnd"], run["durationInMs"]) == ("Queued", None, None)
    assert run["lastUpdated"] == run["runStart"]
    assert run["invokedBy"]["name"] == run["invokedBy"]["invokedByType"] == "Manual"
    clock.advance(1.0)
    _, run = await adf.get(run_id)
    assert run["status"] == "InProgress"
    assert run["lastUpdated"] == format_time(start + 10_000_000)
    clock.advance(2.0)
    _, run = await adf.get(run_id)
    assert (run["status"], run["durationInMs"], run["message"]) == ("Succeeded", 3000, "")
    assert run["runEnd"] == run["lastUpdated"] == format_time(start + 30_000_000)


async def test_the_failure_rate_fails_runs(adf_for: AdfFor) -> None:
    adf, served = await adf_for(run_failure_rate=1.0, run_queued_ms=0, run_duration_ms=10)
    run_id = await adf.run_id("p")
    served.manual_clock.advance(1)
    _, run = await adf.get(run_id)
    assert run["status"] == "Failed" and run["message"]


async def test_cancel_moves_a_run_through_canceling_to_cancelled(adf_for: AdfFor) -> None:
    adf, served = await adf_for(run_queued_ms=1000, run_duration_ms=60_000, cancel_ms=500)
    run_id = await adf.run_id("p")
    served.manual_clock.advance(1.5)
    status, body, response = await adf.call("POST", f"/pipelineruns/{run_id}/cancel")
    assert (status, body) == (200, "")
    assert "x-ms-ratelimit-remaining-subscription-writes" in response.headers
    assert (await adf.get(run_id))[1]["status"] == "Canceling"
    assert (await adf.cancel(run_id))[0] == 200  # cancelling again is harmless
    served.manual_clock.advance(0.5)
    _, run = await adf.get(run_id)
    assert (run["status"], run["runEnd"]) == ("Cancelled", None)
    assert error_code(await adf.cancel(run_id), 400) == "PipelineRunNotRunning"
    assert error_code(await adf.cancel(str(uuid.uuid4())), 404) == "PipelineRunNotFound"


# --- ARM limits --------------------------------------------------------------------------------


def test_token_bucket_spends_its_burst_then_refills() -> None:
    now = [0.0]
    bucket = TokenBucket(capacity=3, refill_per_s=0.5, clock=lambda: now[0])
    for left in (2, 1, 0):
        assert bucket.has_token()
        bucket.take()
        assert bucket.remaining() == left
    assert not bucket.has_token()
    assert bucket.retry_after_s() == 2
    now[0] = 1.0
    assert not bucket.has_token() and bucket.retry_after_s() == 1
    now[0] = 2.0
    assert bucket.has_token() and bucket.remaining() == 1
    now[0] = 1000.0
    assert bucket.remaining() == 3  # never above the burst


def test_hourly_window_resets_an_hour_after_it_opened() -> None:
    now = [0.0]
    window = HourlyWindow(limit=2, clock=lambda: now[0])
    window.take()
    now[0] = 10.0
    window.take()
    assert not window.has_token() and window.remaining() == 0
    assert window.retry_after_s() == 3590
    now[0] = 3599.5
    assert window.retry_after_s() == 1
    now[0] = 3600.0
    assert window.has_token() and window.remaining() == 2


async def test_writes_beyond_the_burst_get_429_with_retry_after(adf_for: AdfFor) -> None:
    adf, served = await adf_for(write_burst=3, write_refill=0.5)
    remaining = []
    for _ in range(3):
        status, _, response = await adf.create("p")
        assert status == 200
        remaining.append(response.headers["x-ms-ratelimit-remaining-subscription-writes"])
    assert remaining == ["2", "1", "0"]
    status, body, response = await adf.create("p")
    assert error_code((status, body), 429) == "SubscriptionRequestsThrottled"
    assert response.headers["Retry-After"] == "2"
    assert "Number of 'write' requests for subscription" in body["error"]["message"]
    assert "after '2' seconds" in body["error"]["message"]
    assert served.state.stats.runs_created == 3  # a 429 creates nothing
    # reads have their own bucket
    status, _, response = await adf.call("POST", "/queryPipelineRuns", body=WIDE)
    assert status == 200
    assert response.headers["x-ms-ratelimit-remaining-subscription-reads"] == "249"
    served.manual_clock.advance(2)
    assert (await adf.create("p"))[0] == 200
    # another subscription has its own budget
    assert (await adf.create("p", sub="22222222-2222-2222-2222-222222222222"))[0] == 200


async def test_the_global_write_bucket_is_not_shared_by_subscriptions(adf_for: AdfFor) -> None:
    # ARM's global limit is per subscription (all principals together), not one for the service
    adf, _ = await adf_for(write_burst=1, write_refill=1)
    for n in range(16):
        status, _, response = await adf.create("p", sub=f"sub-{n}")
        assert status == 200
        assert response.headers["x-ms-ratelimit-remaining-subscription-global-writes"] == "14"
    status, body, response = await adf.create("p", sub="sub-15")
    assert error_code((status, body), 429) == "SubscriptionRequestsThrottled"
    assert response.headers["x-ms-ratelimit-remaining-subscription-writes"] == "0"


async def test_reads_beyond_their_burst_get_429(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(read_burst=2, read_refill=1)
    run_id = await adf.run_id("p")
    assert [(await adf.get(run_id))[0] for _ in range(2)] == [200, 200]
    status, body, response = await adf.call("GET", f"/pipelineruns/{run_id}")
    assert error_code((status, body), 429) == "SubscriptionRequestsThrottled"
    assert "'read'" in body["error"]["message"]
    assert response.headers["Retry-After"] == "1"


async def test_hourly_mode_counts_down_a_fixed_budget(adf_for: AdfFor) -> None:
    adf, served = await adf_for(hourly=True, hourly_writes=3)
    seen = []
    for _ in range(3):
        status, _, response = await adf.create("p")
        assert status == 200
        assert "x-ms-ratelimit-remaining-subscription-global-writes" not in response.headers
        seen.append(response.headers["x-ms-ratelimit-remaining-subscription-writes"])
    assert seen == ["2", "1", "0"]
    served.manual_clock.advance(600)
    status, body, response = await adf.create("p")
    assert error_code((status, body), 429) == "SubscriptionRequestsThrottled"
    assert response.headers["Retry-After"] == "3000"
    assert "limit of '3'" in body["error"]["message"]
    served.manual_clock.advance(3000)
    status, _, response = await adf.create("p")
    assert status == 200
    assert response.headers["x-ms-ratelimit-remaining-subscription-writes"] == "2"


# --- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Authorization": ""}, "AuthenticationFailed"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "AuthenticationFailed"),
        ({"Authorization": "Bearer "}, "AuthenticationFailed"),
        ({"Authorization": "Bearer not-the-one"}, "InvalidAuthenticationToken"),
    ],
)
async def test_a_missing_or_wrong_token_is_401_and_creates_nothing(
    adf_for: AdfFor, session: aiohttp.ClientSession, headers: dict[str, str], code: str
) -> None:
    adf, served = await adf_for(expect_token="the-one")
    url = factory_url(served.url) + "/pipelines/p/createRun?api-version=2018-06-01"
    async with session.post(url, json={}) as response:
        assert response.status == 401
        assert check("CloudError", await response.json())["error"]["code"] == "AuthenticationFailed"
        assert "WWW-Authenticate" in response.headers
    assert error_code(await adf.create("p", headers=headers), 401) == code
    assert served.state.stats.runs_created == 0
    assert (await adf.create("p", headers={"Authorization": "Bearer the-one"}))[0] == 200


async def test_managed_identity_credential_gets_a_token(
    serve_emulator: ServeEmulator, monkeypatch: pytest.MonkeyPatch, session: aiohttp.ClientSession
) -> None:
    from azure.identity.aio import ManagedIdentityCredential

    served = await serve_emulator(clock=SystemClock(), expect_token="issued-token", token_ttl_s=600)
    for name in ("IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{served.url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "batchrun-emulator")
    async with ManagedIdentityCredential() as credential:
        token = await credential.get_token("https://management.azure.com/.default")
    assert token.token == "issued-token"
    assert 590 <= token.expires_on - SystemClock().time() <= 600
    # the token it hands out is the one the emulator accepts
    adf = Adf(session, served.url)
    headers = {"Authorization": f"Bearer {token.token}"}
    assert (await adf.create("p", headers=headers))[0] == 200


@pytest.mark.parametrize(("secret", "status"), [(None, 400), ("wrong", 401)])
async def test_the_identity_endpoint_wants_its_secret(
    serve_emulator: ServeEmulator, session: aiohttp.ClientSession, secret: str | None, status: int
) -> None:
    served = await serve_emulator()
    headers = {} if secret is None else {"X-IDENTITY-HEADER": secret}
    url = f"{served.url}/msi/token?api-version=2019-08-01&resource=https://management.azure.com"
    async with session.get(url, headers=headers) as response:
        assert response.status == status
        assert "access_token" not in await response.json()


# --- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "created"),
    [("fail_500", 500, 0), ("fail_503", 503, 0), ("fail_500_after_create", 500, 1)],
)
async def test_5xx_faults_before_and_after_create(
    adf_for: AdfFor, fault: str, status: int, created: int
) -> None:
    adf, served = await adf_for(**{fault: 1.0})
    got, body, response = await adf.create("p")
    assert got == status
    check("CloudError", body)
    if fault == "fail_503":
        assert response.headers["Retry-After"] == "1"
    assert served.state.stats.runs_created == created
    assert len(await adf.runs()) == created


async def test_a_gateway_502_has_an_html_body(adf_for: AdfFor) -> None:
    adf, served = await adf_for(fail_502_html=1.0)
    status, body, response = await adf.create("p")
    assert status == 502
    assert response.content_type == "text/html"
    assert body.startswith("<html>")
    assert served.state.stats.runs_created == 0


async def test_drop_after_create_cuts_the_connection_but_the_run_exists(adf_for: AdfFor) -> None:
    adf, served = await adf_for(drop_after_create=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await adf.create("p", {"day": "1"})
    [run] = await adf.runs()
    assert run["parameters"] == {"day": "1"}
    assert served.state.stats.snapshot()["requests"]["createRun"] == {"dropped": 1}


async def test_stall_after_create_answers_too_late_but_the_run_exists(
    serve_emulator: ServeEmulator,
) -> None:
    served = await serve_emulator(stall_after_create=1.0, stall_ms=5000)
    timeout = aiohttp.ClientTimeout(total=0.2)
    async with aiohttp.ClientSession(timeout=timeout) as impatient:
        with pytest.raises(TimeoutError):
            await Adf(impatient, served.url).create("p")
    async with aiohttp.ClientSession() as patient:
        assert len(await Adf(patient, served.url).runs()) == 1


async def test_the_seed_makes_faults_reproducible(adf_for: AdfFor) -> None:
    async def statuses(seed: int) -> list[int]:
        adf, _ = await adf_for(seed=seed, fail_500=0.3, fail_503=0.3, fail_503_retry_after_s=0)
        return [(await adf.create("p"))[0] for _ in range(30)]

    first = await statuses(1)
    assert first == await statuses(1)
    assert first != await statuses(2)
    assert {200, 500, 503} == set(first)


async def test_faults_spare_reads_unless_asked(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(fail_500=1.0)
    assert (await adf.query(WIDE))[0] == 200
    adf, _ = await adf_for(fail_500=1.0, faults_on_reads=True)
    assert (await adf.query(WIDE))[0] == 500


# --- stats -------------------------------------------------------------------------------------


async def test_stats_count_requests_and_duplicate_creations(
    adf_for: AdfFor, session: aiohttp.ClientSession
) -> None:
    adf, served = await adf_for(write_burst=4)
    for parameters in ({"day": 1}, {"day": 1}, {"day": 2}, {"day": 1}):
        assert (await adf.create("p", parameters))[0] == 200
    assert (await adf.create("p"))[0] == 429
    async with session.get(f"{served.url}/_emulator/stats") as response:
        stats = await response.json()
    assert stats["requests"] == {"createRun": {"200": 4, "429": 1}}
    assert stats["runs_created"] == 4
    assert stats["duplicates"] == 2
    [example] = stats["duplicate_keys"]
    assert example["pipeline"] == "p"
    assert example["factory"].endswith("/factories/sales-eu")
    assert example["recovery"] == ""
    assert example["parameters"] == '{"day":1}'
    assert example["count"] == 3
    assert stats["peak_in_flight"] >= 1
    async with session.post(f"{served.url}/_emulator/reset") as response:
        assert response.status == 200
    assert served.state.stats.runs_created == 0 and await adf.runs() == []


# --- config and history ------------------------------------------------------------------------


def test_the_demo_config_declares_three_factories() -> None:
    config = load_config(DEMO_CONFIG)
    names = sorted(spec.name for spec in config.topology.factories.values())
    assert names == ["finance-core", "sales-eu", "sales-us"]
    for spec in config.topology.factories.values():
        assert sorted(p.name for p in spec.pipelines.values()) == sorted(
            ["LoadOrders", "LoadCustomers", "LoadInvoices", "BuildMarts", "ExportReports"]
        )
        for pipeline in spec.pipelines.values():
            assert pipeline.parameters == frozenset({"partition", "region", "run_date"})
    assert config.settings["write_burst"] == 40


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"setings": {}}, "unknown key(s) setings"),
        ({"settings": {"write_brust": 1}}, "unknown setting 'write_brust'"),
        ({"settings": {"write_burst": "many"}}, "'write_burst' must be int"),
        ({"subscriptions": {"s": {"resource_groups": {"rg": {"factories": {"x": {}}}}}}}, "'x'"),
        ({"subscriptions": {"s": {"groups": {}}}}, "unknown key(s) groups"),
    ],
)
def test_config_mistakes_are_reported_where_they_are(document: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(document, source="emulator.yaml")


async def test_history_seeds_runs_to_recover(adf_for: AdfFor, tmp_path: Path) -> None:
    path = tmp_path / "history.yaml"
    factory = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DataFactory/factories"
    failed = "2f7fdb90-5df1-4b8e-ac2f-064cfa58202b"
    path.write_text(
        f"""
- factory: {factory}/{FACTORY}
  pipelineName: LoadOrders
  runId: {failed}
  status: Failed
  runStart: "2026-05-20T02:00:00.0000000Z"
  runEnd: 2026-05-20T02:03:10Z
  parameters: {{partition: 7}}
  message: "Operation on target CopyOrders failed"
- factory: {factory}/{FACTORY}
  pipelineName: LoadOrders
  runId: 16ac5348-ff82-4f95-a80d-638c1d47b721
  status: Succeeded
  runStart: "2026-05-20T02:00:00Z"
  runEnd: "2026-05-20T02:01:00Z"
""",
        encoding="utf-8",
    )
    history = load_history(path, TOPOLOGY)
    adf, _ = await adf_for(TOPOLOGY, history=history)
    [run] = await adf.runs(where("Status", "Equals", "Failed"))
    assert run["runId"] == failed and run["parameters"] == {"partition": "7"}
    assert run["durationInMs"] == 190_000 and run["isLatest"]
    query = {"referencePipelineRunId": failed, "isRecovery": "true"}
    recovered = await adf.run_id(query=query)
    group = {r["runId"]: r for r in await adf.runs(where("RunGroupId", "In", failed))}
    assert set(group) == {failed, recovered}
    assert not group[failed]["isLatest"] and group[recovered]["isLatest"]

    path.write_text(f"- {{factory: {factory}/nope, runId: x}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="missing pipelineName, runStart, status"):
        load_history(path, TOPOLOGY)


def test_times_round_trip_at_adf_resolution() -> None:
    text = "2018-06-16T00:37:44.6257014Z"
    assert format_time(parse_time(text, field="t")) == text
    assert parse_time("2018-06-16T02:37:44.6257014+02:00", field="t") == parse_time(text, field="t")
    assert format_time(parse_time("2018-06-16T00:37:44", field="t")).endswith(":44.0000000Z")


# --- the process -------------------------------------------------------------------------------


@pytest.mark.e2e
async def test_the_process_listens_on_a_free_port_and_exits_cleanly(
    start_emulator: StartEmulator, session: aiohttp.ClientSession
) -> None:
    emulator = start_emulator("--accept-any", "--expect-token", "s3cret-token-value")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emulator.url)
    assert not emulator.url.endswith(":0")
    headers = {"Authorization": "Bearer s3cret-token-value"}
    adf = Adf(session, emulator.url)
    assert (await adf.create("p", headers=headers))[0] == 200
    assert (await adf.create("p"))[0] == 401  # AUTH's token is not the expected one
    stats = emulator.stats()
    assert stats["requests"]["createRun"] == {"200": 1, "401": 1}
    assert stats["runs_created"] == 1
    assert emulator.stop() == 0
    log = emulator.log()
    assert "/pipelines/p/createRun 200" in log
    assert "s3cret" not in log and "test-token" not in log


@pytest.mark.e2e
async def test_the_process_serves_the_demo_topology(
    start_emulator: StartEmulator, session: aiohttp.ClientSession
) -> None:
    emulator = start_emulator(
        "--config", str(DEMO_CONFIG), "--fail-503", "0", "--fail-500", "0", "--quiet"
    )
    adf = Adf(session, emulator.url)
    parameters = {"partition": 1, "region": "eu", "run_date": "2026-11-26"}
    status, _, response = await adf.create("ExportReports", parameters)
    assert status == 200
    assert response.headers["x-ms-ratelimit-remaining-subscription-writes"] == "39"
    assert error_code((await adf.create("LoadOrders", factory="sales-apac"))[:2], 404)
    assert emulator.stop() == 0
    assert emulator.log() == ""


@pytest.mark.e2e
def test_a_bad_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("settings: {fail_500: 2}\n", encoding="utf-8")
    result = emulator_exit("--config", str(config))
    assert result.returncode == 2
    assert "fail_500 must be a probability" in result.stderr
    assert result.stdout == ""
