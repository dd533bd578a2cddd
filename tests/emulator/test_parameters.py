"""Pipeline parameters with defaults: a run lists what was sent plus the defaults not sent."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from batchrun.emulator.config import ConfigError, parse_config
from tests.helpers.emulator_http import SUB, AdfFor, cloud_error, sales_eu

CONFIG = sales_eu("""
LoadOrders: {parameters: [partition, region]}
LoadRefunds:
  parameters:
    region: {type: String, defaultValue: eu}
    partition: {type: Int}
    days: {type: Int, defaultValue: 7}
    ratio: {type: Float, defaultValue: 0.5}
    full: {type: Bool, defaultValue: true}
    tables: {type: Array, defaultValue: [orders, refunds]}
    options: {type: Object, defaultValue: {mode: fast}}
""")


async def test_defaults_fill_in_what_was_not_sent_all_as_strings(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(CONFIG)
    run_id = await adf.run_id("LoadRefunds", {"partition": 3, "region": "us"})
    assert (await adf.get(run_id))["parameters"] == {
        "region": "us",
        "partition": "3",
        "days": "7",
        "ratio": "0.5",
        "full": "true",
        "tables": '["orders","refunds"]',
        "options": '{"mode":"fast"}',
    }
    [run] = await adf.runs()
    assert run["parameters"]["days"] == "7"


async def test_a_parameter_without_default_that_is_not_sent_is_absent(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(CONFIG)
    run = await adf.get(await adf.run_id("LoadRefunds"))
    assert "partition" not in run["parameters"]
    assert run["parameters"]["region"] == "eu"


async def test_a_recovery_rerun_keeps_the_reference_runs_values(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(CONFIG)
    first = await adf.run_id("LoadRefunds", {"days": 1})
    rerun = await adf.run_id(
        "LoadRefunds", {}, query={"referencePipelineRunId": first, "isRecovery": "true"}
    )
    assert (await adf.get(rerun))["parameters"]["days"] == "1"


async def test_the_list_form_still_declares_names_without_defaults(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(CONFIG)
    run = await adf.get(await adf.run_id("LoadOrders", {"partition": 1}))
    assert run["parameters"] == {"partition": "1"}
    status, body, _ = await adf.create("LoadOrders", {"nope": 1})
    assert cloud_error((status, body), 400)["target"] == "parameters.nope"


async def test_an_undeclared_parameter_is_refused_in_the_mapping_form_too(adf_for: AdfFor) -> None:
    adf, served = await adf_for(CONFIG)
    status, body, _ = await adf.create("LoadRefunds", {"nope": 1})
    assert cloud_error((status, body), 400)["target"] == "parameters.nope"
    assert served.state.stats.runs_created == 0


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"a": {"type": "Text"}}, "a.type: expected one of Object, String"),
        ({"a": {"defaultValue": 1}}, "a.type: expected one of"),
        ({"a": {"type": "Int", "default": 1}}, "unknown key(s) default"),
        ({"a": "String"}, "expected a mapping"),
        ("a", "expected a list of parameter names or a mapping"),
    ],
)
def test_parameter_mistakes_are_reported_where_they_are(parameters: Any, message: str) -> None:
    document = yaml.safe_load(CONFIG)
    factory = document["subscriptions"][SUB]["resource_groups"]["rg-data"]["factories"]
    factory["sales-eu"]["pipelines"]["LoadRefunds"]["parameters"] = parameters
    with pytest.raises(ConfigError, match=r"LoadRefunds\.parameters") as caught:
        parse_config(document, source="emulator.yaml")
    assert message in str(caught.value)


def test_parameter_types_are_read_case_insensitively_and_kept_canonical() -> None:
    document = {
        "subscriptions": {
            SUB: {
                "resource_groups": {
                    "rg": {
                        "factories": {
                            "abc": {"pipelines": {"P": {"parameters": {"n": {"type": "int"}}}}}
                        }
                    }
                }
            }
        }
    }
    topology = parse_config(document, source="x").topology
    [factory] = topology.factories.values()
    assert factory.pipelines["p"].definition("n").type == "Int"
