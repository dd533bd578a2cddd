"""The recovery guard: before posting a recovery entry, is there already a newer run in its group?

Running the same recovery manifest twice must never rerun a group twice: the reference run's
``isLatest`` says whether a newer run joined the group, and a query on the group finds it.

The scheduler asks before *every* post of a recovery entry, not only the first: after an
ambiguous attempt the reference's ``isLatest`` is the reliable sign that our rerun exists, even
when reconciliation could not match it (a rerun's ``invokedBy`` is undocumented, say). Whose the
newer run is, ours or someone else's, follows from when it started
(:meth:`NewerRun.started_since`, on the server's clock, read from the query's ``Date``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from batchrun.arm.reads import CLOCK_SKEW, PipelineRun, all_pages, group_query
from batchrun.errors import ApiError
from batchrun.run.constants import GUARD_MAX_PAGES
from batchrun.times import Now, utc_now

if TYPE_CHECKING:
    from collections.abc import Mapping

    from batchrun.arm.client import QueryResponse, RunReader
    from batchrun.model import RunSpec


@dataclass(frozen=True, slots=True)
class NewerRun:
    """The newest run of a recovery group, newer than the entry's reference run."""

    run_id: str
    run_start: datetime
    """On the server's clock."""
    server_offset: timedelta | None
    """The server's clock less ours, from the query's ``Date``; None when it sent none."""

    def started_since(self, moment: datetime, *, margin: timedelta) -> bool:
        """Whether the run started after ``moment`` (our clock) less ``margin``: the margin
        covers ``Date``'s whole seconds and the hosts' own skew."""
        on_server = moment + (self.server_offset or timedelta(0))
        return self.run_start >= on_server - margin


async def newer_run_in_group(reader: RunReader, spec: RunSpec, *, now: Now = utc_now) -> str | None:
    """The runId of :func:`newest_in_group`, if any."""
    newer = await newest_in_group(reader, spec, now=now)
    return None if newer is None else newer.run_id


async def newest_in_group(
    reader: RunReader, spec: RunSpec, *, now: Now = utc_now
) -> NewerRun | None:
    """The newest run in ``spec``'s recovery group, when it is newer than the reference run.

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

    offsets: list[timedelta] = []

    async def page(parameters: Mapping[str, Any]) -> QueryResponse:
        response = await reader.query_pipeline_runs(
            subscription=spec.subscription,
            resource_group=spec.resource_group,
            factory=spec.factory,
            filter_parameters=parameters,
        )
        if response.server_date is not None:
            offsets.append(response.server_date - now())
        return response

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
    newest = max(newer, key=lambda run: (run.run_start, run.run_id))
    return NewerRun(newest.run_id, newest.run_start, offsets[-1] if offsets else None)
