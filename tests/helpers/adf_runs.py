"""The runs an emulator process holds, read as a client reads them (``queryPipelineRuns``, paged):
for end-to-end tests that check when ADF created a run, when it ended and with which parameters,
on the emulator's own clock rather than from batchrun's report."""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from batchrun.emulator.process import EmulatorProcess

__all__ = ["factory_runs"]

_WIDE = {"lastUpdatedAfter": "2000-01-01T00:00:00Z", "lastUpdatedBefore": "2100-01-01T00:00:00Z"}
_MAX_PAGES = 100


def factory_runs(
    emulator: EmulatorProcess, *, subscription: str, resource_group: str, factory: str
) -> list[dict[str, Any]]:
    """Every run of one factory, as ADF's PipelineRun objects (``runId``, ``pipelineName``,
    ``parameters``, ``runStart``, ``runEnd``, ``status``…); the emulator takes any bearer token
    unless it was started with one to expect."""
    url = (
        f"{emulator.url}/subscriptions/{quote(subscription, safe='')}"
        f"/resourceGroups/{quote(resource_group, safe='')}"
        f"/providers/Microsoft.DataFactory/factories/{quote(factory, safe='')}"
        "/queryPipelineRuns?api-version=2018-06-01"
    )
    body: dict[str, Any] = dict(_WIDE)
    runs: list[dict[str, Any]] = []
    for _ in range(_MAX_PAGES):
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            headers={"Authorization": "Bearer e2e", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            page = json.load(response)
        runs += page["value"]
        if not page.get("continuationToken"):
            return runs
        body["continuationToken"] = page["continuationToken"]
    raise AssertionError(f"queryPipelineRuns of {factory} kept paging past {_MAX_PAGES} pages")
