"""A small raw ADF client for the emulator, the spec's schemas, and names used throughout."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import yaml
from jsonschema import Draft4Validator
from yarl import URL

from batchrun.emulator.config import Topology, parse_config
from tests.helpers.emulator import emulator_config
from tests.helpers.paths import DATA

if TYPE_CHECKING:
    import aiohttp

SPEC = json.loads((DATA / "adf-openapi-subset.json").read_text())

SUB = "11111111-1111-1111-1111-111111111111"
RG = "rg-data"
FACTORY = "sales-eu"
TOKEN = "test-token"
WIDE = {"lastUpdatedAfter": "2000-01-01T00:00:00Z", "lastUpdatedBefore": "2100-01-01T00:00:00Z"}


def _definitions() -> dict[str, Any]:
    definitions: dict[str, Any] = copy.deepcopy(SPEC["definitions"])
    # ADF answers null for an unfinished run's runEnd and durationInMs; the swagger cannot say so
    run = definitions["PipelineRun"]["properties"]
    run["runEnd"]["type"] = ["string", "null"]
    run["durationInMs"]["type"] = ["integer", "null"]
    # the swagger's `type: object` for a default means any JSON value ("Default value of
    # parameter."): a String parameter's default is a string
    del definitions["ParameterSpecification"]["properties"]["defaultValue"]["type"]
    # autorest reads allOf as inheritance; JSON Schema's additionalProperties would not see the
    # SubResource properties (id, name, type, etag), so they are copied in
    resource = definitions["PipelineResource"]
    resource["properties"].update(definitions["SubResource"]["properties"])
    return definitions


DEFINITIONS = _definitions()


def check(definition: str, instance: Any) -> Any:
    schema = {"$ref": f"#/definitions/{definition}", "definitions": DEFINITIONS}
    Draft4Validator(schema).validate(instance)
    return instance


def where(operand: str, operator: str, *values: str) -> dict[str, Any]:
    return {"operand": operand, "operator": operator, "values": list(values)}


def factory_path(*, sub: str = SUB, rg: str = RG, factory: str = FACTORY) -> str:
    return (
        f"/subscriptions/{quote(sub, safe='')}/resourceGroups/{quote(rg, safe='')}"
        f"/providers/Microsoft.DataFactory/factories/{quote(factory, safe='')}"
    )


class Adf:
    """Raw ADF calls: status, JSON body (or text) and headers, nothing interpreted."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str = TOKEN) -> None:
        self.session = session
        self.base = base
        self.token = token

    def as_principal(self, token: str) -> Adf:
        return Adf(self.session, self.base, token)

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        **names: str,
    ) -> tuple[int, Any, Any]:
        params = {**(query or {}), "api-version": "2018-06-01"}
        url = URL(self.base + factory_path(**names) + path, encoded=True).update_query(params)
        data = None if body is None else json.dumps(body).encode()
        sent = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        async with self.session.request(method, url, data=data, headers=sent) as response:
            text = await response.text()
            payload = json.loads(text) if text and "json" in response.content_type else text
            return response.status, payload, response.headers

    async def create(
        self, pipeline: str = "LoadOrders", parameters: Any = None, **kwargs: Any
    ) -> tuple[int, Any, Any]:
        path = f"/pipelines/{quote(pipeline, safe='')}/createRun"
        return await self.call(
            "POST", path, body={} if parameters is None else parameters, **kwargs
        )

    async def run_id(self, pipeline: str = "LoadOrders", parameters: Any = None, **kw: Any) -> str:
        status, body, _ = await self.create(pipeline, parameters, **kw)
        assert status == 200, body
        return str(check("CreateRunResponse", body)["runId"])

    async def query(self, body: dict[str, Any], **names: Any) -> tuple[int, Any]:
        status, answer, _ = await self.call("POST", "/queryPipelineRuns", body=body, **names)
        return status, answer

    async def runs(self, *filters: dict[str, Any], **names: Any) -> list[dict[str, Any]]:
        status, answer = await self.query({**WIDE, "filters": list(filters)}, **names)
        assert status == 200, answer
        return list(check("PipelineRunsQueryResponse", answer)["value"])

    async def get(self, run_id: str, **names: Any) -> dict[str, Any]:
        status, body, _ = await self.call("GET", f"/pipelineruns/{run_id}", **names)
        assert status == 200, body
        return dict(check("PipelineRun", body))

    async def statuses(self, pipeline: str = "LoadOrders") -> list[str]:
        return [run["status"] for run in await self.runs(where("PipelineName", "Equals", pipeline))]


def cloud_error(status_body: tuple[int, Any], status: int) -> dict[str, Any]:
    """The CloudError body of an answer that must have ``status``."""
    got, body = status_body
    assert got == status, body
    return dict(check("CloudError", body)["error"])


def topology(config_yaml: str) -> Topology:
    return parse_config(yaml.safe_load(config_yaml), source="test").topology


def sales_eu(pipelines: str) -> str:
    """An emulator config of the one factory these tests name (SUB, RG, FACTORY)."""
    return emulator_config({(SUB, RG, FACTORY): pipelines})


AdfFor = Callable[..., Any]  # async (config_yaml=None, **settings) -> (Adf, InProcessEmulator)
