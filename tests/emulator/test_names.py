"""ARM and ADF names are case-insensitive; runs and resources keep the canonical spelling."""

from __future__ import annotations

from tests.helpers.emulator import emulator_config
from tests.helpers.emulator_http import SUB, AdfFor, where

CONFIG = emulator_config({(SUB, "Rg-Data", "Sales-EU"): "LoadOrders: {parameters: [partition]}"})
ODD = {"sub": SUB.upper(), "rg": "RG-DATA", "factory": "sales-eu"}


async def test_lookups_ignore_case_and_runs_report_the_configured_spelling(
    adf_for: AdfFor,
) -> None:
    adf, _ = await adf_for(CONFIG)
    run_id = await adf.run_id("LOADORDERS", {"partition": 1}, **ODD)
    run = await adf.get(run_id.upper(), sub=SUB, rg="rg-data", factory="SALES-eu")
    assert run["pipelineName"] == "LoadOrders"
    found = await adf.runs(where("PipelineName", "Equals", "loadorders"), **ODD)
    assert [r["pipelineName"] for r in found] == ["LoadOrders"]


async def test_a_pipeline_reads_back_with_its_configured_name_and_id(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(CONFIG)
    status, body, _ = await adf.call("GET", "/pipelines/loadORDERS", **ODD)
    assert status == 200, body
    assert body["name"] == "LoadOrders"
    assert body["id"] == (
        f"/subscriptions/{SUB}/resourceGroups/Rg-Data/providers/Microsoft.DataFactory"
        "/factories/Sales-EU/pipelines/LoadOrders"
    )


async def test_with_accept_any_the_first_spelling_is_the_name(adf_for: AdfFor) -> None:
    adf, _ = await adf_for()
    await adf.run_id("LoadOrders")
    await adf.run_id("LOADORDERS", factory="SALES-EU")
    assert [run["pipelineName"] for run in await adf.runs()] == ["LoadOrders", "LoadOrders"]
    status, body, _ = await adf.call("GET", "/pipelines/loadorders", factory="Sales-Eu")
    assert status == 200, body
    assert body["name"] == "LoadOrders"
    assert "/factories/sales-eu/pipelines/LoadOrders" in body["id"]
