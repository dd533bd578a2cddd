"""queryPipelineRuns refuses what ADF refuses, and runs carry ADF's field names."""

from __future__ import annotations

import pytest

from batchrun.emulator.query import RUN_GROUP_SINGLE
from tests.helpers.emulator_http import WIDE, AdfFor, cloud_error, where

# azure-sdk-for-net issue #22025 quotes ADF's answer word for word, typo included
ADF_WORDS = (
    "Filter operand 'RunGroupId' does not support and array of values. "
    "Make sure to provide only one."
)


def test_the_message_is_adfs_own_words() -> None:
    assert RUN_GROUP_SINGLE == ADF_WORDS


@pytest.mark.parametrize("operator", ["In", "Equals", "NotIn", "NotEquals"])
async def test_a_run_group_filter_of_several_values_is_400(adf_for: AdfFor, operator: str) -> None:
    adf, _ = await adf_for(single_run_group_filter=True)
    first, second = await adf.run_id("p"), await adf.run_id("p")
    body = {**WIDE, "filters": [where("RunGroupId", operator, first, second)]}
    error = cloud_error(await adf.query(body), 400)
    assert error["message"] == ADF_WORDS
    assert error["code"] == "BadRequest"


async def test_a_run_group_filter_of_one_value_is_answered(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(single_run_group_filter=True)
    first = await adf.run_id("p")
    await adf.run_id("p")
    assert [run["runId"] for run in await adf.runs(where("RunGroupId", "In", first))] == [first]


async def test_several_run_groups_are_answered_by_the_older_habit(adf_for: AdfFor) -> None:
    # the emulator's older, laxer habit, no longer the default: ADF refuses such a filter
    adf, _ = await adf_for(single_run_group_filter=False)
    first, second = await adf.run_id("p"), await adf.run_id("p")
    found = await adf.runs(where("RunGroupId", "In", first, second))
    assert {run["runId"] for run in found} == {first, second}


@pytest.mark.parametrize("order", ["ASC", "DESC"])
async def test_ordering_by_last_updated_is_400(adf_for: AdfFor, order: str) -> None:
    adf, _ = await adf_for()
    await adf.run_id("p")
    body = {**WIDE, "orderBy": [{"orderBy": "LastUpdated", "order": order}]}
    error = cloud_error(await adf.query(body), 400)
    assert error["code"] == "BadRequest"
    assert "RunStart, RunEnd, PipelineName, Status" in error["message"]


async def test_runs_carry_run_dimension_singular(adf_for: AdfFor) -> None:
    adf, _ = await adf_for()
    run_id = await adf.run_id("p")
    for run in [await adf.get(run_id), *(await adf.runs())]:
        assert run["runDimension"] == {}
        assert "runDimensions" not in run
