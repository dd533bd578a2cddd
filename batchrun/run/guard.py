"""The recovery guard: before posting a recovery entry, is there already a newer run in its group?

Running the same recovery manifest twice must never rerun a group twice: the reference run's
``isLatest`` says whether a newer run joined the group, and a query on the group finds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchrun.arm.client import QueryResponse, RunReader
from batchrun.arm.reads import CLOCK_SKEW, PipelineRun, all_pages, group_query
from batchrun.errors import ApiError
from batchrun.model import RunSpec
from batchrun.run.constants import GUARD_MAX_PAGES
from batchrun.times import Now, utc_now


async def newer_run_in_group(reader: RunReader, spec: RunSpec, *, now: Now = utc_now) -> str | None:
    """The runId of a run newer than ``spec``'s reference run in its recovery group, if any.

    None for an entry that is not a recovery (``is_recovery`` with ``reference_run_id``), or
    whose reference run is still the latest of its group. Raises :class:`ApiError` when ADF
    cannot be asked, and (transient) ``LatestRunNotFound`` when the reference run is no longer
    the latest but the newer run cannot be seen yet: either way, do not post.
    """
    if not spec.is_recovery or spec.reference_run_id is None:
        return None
    where = f"{spec.subscription}/{spec.resource_group}/{spec.factory}"
    data = await reader.get_pipeline_run(
        subscription=spec.subscription,
        resource_group=spec.resource_group,
        factory=spec.factory,
        run_id=spec.reference_run_id,
    )
    reference = PipelineRun.from_wire(
        data, where=f"pipelineruns/{spec.reference_run_id} on {where}"
    )
    if reference.is_latest:
        return None
    body = group_query(
        reference.group_id,
        after=reference.run_start - CLOCK_SKEW,
        before=now() + CLOCK_SKEW,
    )

    async def page(parameters: Mapping[str, Any]) -> QueryResponse:
        return await reader.query_pipeline_runs(
            subscription=spec.subscription,
            resource_group=spec.resource_group,
            factory=spec.factory,
            filter_parameters=parameters,
        )

    rows = await all_pages(page, body, max_pages=GUARD_MAX_PAGES, where=where)
    group = (PipelineRun.from_wire(row, where=f"queryPipelineRuns on {where}") for row in rows)
    newer = [
        run
        for run in group
        if run.group_key == reference.group_key and run.run_id != reference.run_id
    ]
    if not newer:
        raise ApiError(
            status=None,
            code="LatestRunNotFound",
            message=(
                f"run {reference.run_id} is no longer the latest of its recovery group "
                f"{reference.group_id}, but the newer run is not visible yet; not posted"
            ),
            transient=True,
            sent=False,
        )
    return max(newer, key=lambda run: (run.run_start, run.run_id)).run_id
