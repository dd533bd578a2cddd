"""Pipelines_Get: a configured pipeline as the spec's PipelineResource, or a 404 CloudError."""

from __future__ import annotations

import json

import pytest

from tests.helpers.emulator_http import AdfFor, check, cloud_error, sales_eu
from tests.helpers.paths import DATA

CONFIG = sales_eu("""
LoadOrders: {parameters: [partition]}
LoadRefunds:
  parameters: {region: {type: String, defaultValue: eu}, partition: {type: Int}}
  concurrency: 2
BuildMarts: {}
""")
EXAMPLE = json.loads((DATA / "Pipelines_Get.json").read_text())["responses"]["200"]


def test_the_references_example_passes_the_same_schema_check() -> None:
    check("PipelineResource", EXAMPLE["body"])


async def test_a_pipeline_answers_as_a_pipeline_resource(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(CONFIG)
    status, body, headers = await adf.call("GET", "/pipelines/LoadRefunds")
    assert status == 200, body
    check("PipelineResource", body)
    assert set(body) == set(EXAMPLE["body"])  # id, name, type, properties, etag
    assert body["type"] == EXAMPLE["body"]["type"]
    assert body["id"].endswith("/factories/sales-eu/pipelines/LoadRefunds")
    assert body["properties"]["parameters"] == {
        "partition": {"type": "Int"},
        "region": {"type": "String", "defaultValue": "eu"},
    }
    assert body["properties"]["concurrency"] == 2
    assert "x-ms-ratelimit-remaining-subscription-reads" in headers


@pytest.mark.parametrize(
    ("pipeline", "parameters"),
    [("LoadOrders", {"partition": {"type": "String"}}), ("BuildMarts", None)],
)
async def test_list_form_and_undeclared_parameters(
    adf_for: AdfFor, pipeline: str, parameters: object
) -> None:
    adf, _ = await adf_for(CONFIG)
    status, body, _ = await adf.call("GET", f"/pipelines/{pipeline}")
    assert status == 200, body
    assert body["properties"].get("parameters") == parameters
    assert "concurrency" not in body["properties"]


async def test_an_unknown_pipeline_is_a_404_cloud_error(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(CONFIG)
    error = cloud_error((await adf.call("GET", "/pipelines/LoadNothing"))[:2], 404)
    assert "LoadNothing" in error["message"]


async def test_if_none_match_with_the_etag_is_304(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(CONFIG)
    _, body, _ = await adf.call("GET", "/pipelines/LoadOrders")
    for tag in (body["etag"], "*"):
        status, text, _ = await adf.call(
            "GET", "/pipelines/LoadOrders", headers={"If-None-Match": tag}
        )
        assert (status, text) == (304, "")
    status, _, _ = await adf.call("GET", "/pipelines/LoadOrders", headers={"If-None-Match": "x"})
    assert status == 200
