"""A run waiting for reconciliation must not hold up the runs behind it.

The fake ADF lists the runs whose answers it lost only once a later run has been created: if the
waiting runs held up the later run, they would never be found, and would be posted again when
their window ends (a duplicate). So these tests are decided by the order of events, not by time.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from batchrun.arm.client import CreateRunResponse, QueryResponse, RateLimits
from batchrun.arm.retry import RetrySettings
from batchrun.errors import TransportError
from batchrun.model import RunSpec
from batchrun.run.constants import TASKS_PER_SLOT
from batchrun.run.progress import Progress
from batchrun.run.reconcile import ReconcileSettings
from batchrun.run.scheduler import SchedulerSettings
from tests.helpers.scheduling import report_lines, scheduler_writing

if TYPE_CHECKING:
    from pathlib import Path

# long enough that a waiting run found at all was found through the later run, never by luck
WINDOW = ReconcileSettings(window_s=3.0, first_poll_s=0.001, max_poll_s=0.005)
RETRY = RetrySettings(max_attempts=3, backoff_initial_s=0.001, backoff_max_s=0.002)


def spec(name: str) -> RunSpec:
    return RunSpec(
        id=name,
        subscription="sub",
        resource_group="rg",
        factory="factory-a",
        pipeline="LoadOrders",
        parameters={"part": name},
    )


class HidingAdf:
    """Loses the answers of ``lost`` runs (after creating them) and lists those runs only once
    the run ``unlocks`` has been created."""

    def __init__(self, *, lost: set[str], unlocks: str) -> None:
        self.lost = lost
        self.unlocks = unlocks
        self.unlocked = False
        self.runs: list[dict[str, Any]] = []

    async def create_run(self, run_spec: RunSpec, *, client_request_id: str) -> CreateRunResponse:
        run_id = str(uuid.uuid4())
        self.runs.append(
            {
                "runId": run_id,
                "spec_id": run_spec.id,
                "pipelineName": run_spec.pipeline,
                "parameters": dict(run_spec.parameters),
                "invokedBy": {"invokedByType": "Manual"},
            }
        )
        if run_spec.id == self.unlocks:
            self.unlocked = True
        if run_spec.id in self.lost:
            self.lost.discard(run_spec.id)  # only the first attempt's answer is lost
            raise TransportError(
                status=None, code="ServerDisconnected", message="m", transient=True, sent=True
            )
        return CreateRunResponse(run_id, 200, None, None, RateLimits(writes=1000))

    async def query_pipeline_runs(self, **_: Any) -> QueryResponse:
        listed = self.runs if self.unlocked else []
        return QueryResponse(list(listed), None, RateLimits(reads=1000), None)

    async def get_pipeline_run(self, **_: Any) -> dict[str, Any]:
        raise AssertionError("no reruns here")


async def run(tmp_path: Path, adf: HidingAdf, runs: list[RunSpec]) -> list[dict[str, Any]]:
    report = tmp_path / "report.jsonl"
    settings = SchedulerSettings(concurrency=1, retry=RETRY, reconcile=WINDOW)
    with scheduler_writing(report, adf, settings=settings, progress=Progress(len(runs))) as sched:
        await sched.run(runs)
    return report_lines(report)


async def test_a_waiting_run_holds_no_request_slot(tmp_path: Path) -> None:
    # one request slot: the second run can only be sent while the first waits without it
    adf = HidingAdf(lost={"first"}, unlocks="second")
    lines = await run(tmp_path, adf, [spec("first"), spec("second")])
    assert [line["id"] for line in lines] == ["second", "first"]
    assert lines[1]["reconciled"] is True
    assert len(adf.runs) == 2


async def test_waiting_runs_do_not_hold_up_their_subscriptions_queue(tmp_path: Path) -> None:
    waiting = [spec(f"lost-{n}") for n in range(TASKS_PER_SLOT)]
    adf = HidingAdf(lost={s.id for s in waiting}, unlocks="behind")
    lines = await run(tmp_path, adf, [*waiting, spec("behind")])
    by_id = {line["id"]: line for line in lines}
    assert all(by_id[s.id].get("reconciled") is True for s in waiting)
    assert len(adf.runs) == len(waiting) + 1  # no run posted twice
