"""The scheduler against a fake trigger: concurrency, retries, stopping, one line per run."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from batchrun.arm.client import CreateRunResponse, QueryResponse, RateLimits
from batchrun.arm.pacing import Pacers, SubscriptionPacer
from batchrun.arm.retry import RetrySettings
from batchrun.errors import ApiError, TransportError
from batchrun.model import RunSpec
from batchrun.report.writer import ReportWriter
from batchrun.run.progress import Progress
from batchrun.run.reconcile import ReconcileSettings
from batchrun.run.scheduler import Scheduler, SchedulerSettings
from tests.helpers.clock import FakeTime
from tests.helpers.scheduling import report_lines, scheduler_writing

if TYPE_CHECKING:
    from pathlib import Path

FAST_RETRY = RetrySettings(max_attempts=4, backoff_initial_s=0.001, backoff_max_s=0.002)
NO_WAIT = ReconcileSettings(window_s=0.0)
QUICK_STOP = SchedulerSettings(concurrency=4, retry=FAST_RETRY, reconcile=NO_WAIT)


def specs(count: int, *, subscriptions: int = 1) -> list[RunSpec]:
    return [
        RunSpec(
            id=f"run-{n}",
            subscription=f"sub-{n % subscriptions}",
            resource_group="rg",
            factory="factory-a",
            pipeline="LoadOrders",
            parameters={"n": n},
        )
        for n in range(count)
    ]


class NoRunsInAdf:
    """queryPipelineRuns finds nothing: every lost response created nothing."""

    queries = 0

    async def query_pipeline_runs(self, **_: Any) -> QueryResponse:
        self.queries += 1
        return QueryResponse(
            value=[], continuation_token=None, limits=RateLimits(), request_id=None
        )

    async def get_pipeline_run(self, **_: Any) -> dict[str, Any]:
        raise AssertionError("not needed")


class SpyTrigger(NoRunsInAdf):
    """Answers after yielding to the loop; counts the peak number of calls in progress."""

    def __init__(self, failures: dict[str, list[ApiError]] | None = None) -> None:
        self.failures = failures or {}
        self.in_progress = 0
        self.peak = 0
        self.calls: Counter[str] = Counter()
        self.request_ids: dict[str, set[str]] = {}
        self.release = asyncio.Event()
        self.release.set()
        self.entered = asyncio.Semaphore(0)

    async def create_run(self, spec: RunSpec, *, client_request_id: str) -> CreateRunResponse:
        self.calls[spec.id] += 1
        self.request_ids.setdefault(spec.id, set()).add(client_request_id)
        self.in_progress += 1
        self.peak = max(self.peak, self.in_progress)
        self.entered.release()
        try:
            # a request lasts a few loop turns, long enough for the others to pile up
            for _ in range(30):
                await asyncio.sleep(0)
            await self.release.wait()
            pending = self.failures.get(spec.id)
            if pending:
                raise pending.pop(0)
            return CreateRunResponse(
                run_id=f"adf-{spec.id}",
                http_status=200,
                request_id="req",
                correlation_id=client_request_id,
                limits=RateLimits(writes=1000),
            )
        finally:
            self.in_progress -= 1


def api_error(status: int, *, transient: bool, code: str = "Err") -> ApiError:
    return ApiError(
        status=status,
        code=code,
        message=f"status {status}",
        transient=transient,
        sent=status >= 500,
        retry_after=0.001 if status == 429 else None,
    )


async def run_scheduler(
    tmp_path: Path, trigger: SpyTrigger, runs: list[RunSpec], *, concurrency: int = 4
) -> tuple[Scheduler, list[dict[str, Any]], Progress]:
    report = tmp_path / "report.jsonl"
    progress = Progress(total=len(runs))
    settings = SchedulerSettings(concurrency=concurrency, retry=FAST_RETRY, reconcile=NO_WAIT)
    with scheduler_writing(report, trigger, settings=settings, progress=progress) as scheduler:
        await scheduler.run(runs)
    return scheduler, report_lines(report), progress


@pytest.mark.parametrize("concurrency", [1, 3, 16])
async def test_peak_concurrency_never_above_the_limit(tmp_path: Path, concurrency: int) -> None:
    trigger = SpyTrigger()
    _, lines, _ = await run_scheduler(
        tmp_path, trigger, specs(200, subscriptions=3), concurrency=concurrency
    )
    assert len(lines) == 200
    assert trigger.peak == concurrency


async def test_every_run_gets_exactly_one_line(tmp_path: Path) -> None:
    trigger = SpyTrigger()
    _, lines, progress = await run_scheduler(tmp_path, trigger, specs(50))
    assert sorted(line["id"] for line in lines) == sorted(f"run-{n}" for n in range(50))
    assert all(line["status"] == "succeeded" for line in lines)
    assert all(line["run_id"] == f"adf-{line['id']}" for line in lines)
    assert progress.succeeded == 50
    assert progress.done == 50


async def test_transient_failures_are_retried_with_the_same_client_request_id(
    tmp_path: Path,
) -> None:
    trigger = SpyTrigger(
        {
            "run-1": [api_error(503, transient=True), api_error(429, transient=True)],
            "run-2": [
                TransportError(status=None, code="ServerDisconnected", message="x", transient=True)
            ],
        }
    )
    _, lines, progress = await run_scheduler(tmp_path, trigger, specs(5))
    by_id = {line["id"]: line for line in lines}
    assert by_id["run-1"]["status"] == "succeeded"
    assert by_id["run-1"]["attempts"] == 3
    assert by_id["run-2"]["attempts"] == 2
    assert len(trigger.request_ids["run-1"]) == 1
    assert progress.retries == 3
    assert progress.throttled == 1


async def test_permanent_failure_fails_at_once_with_the_cloud_error(tmp_path: Path) -> None:
    trigger = SpyTrigger({"run-0": [api_error(404, transient=False, code="PipelineNotFound")]})
    _, lines, progress = await run_scheduler(tmp_path, trigger, specs(3))
    failed = [line for line in lines if line["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["attempts"] == 1
    assert failed[0]["http_status"] == 404
    assert failed[0]["error"]["code"] == "PipelineNotFound"
    assert trigger.calls["run-0"] == 1
    assert progress.failed == 1


async def test_retries_are_bounded(tmp_path: Path) -> None:
    trigger = SpyTrigger({"run-0": [api_error(500, transient=True) for _ in range(10)]})
    _, lines, _ = await run_scheduler(tmp_path, trigger, specs(1))
    assert lines[0]["status"] == "failed"
    assert lines[0]["attempts"] == FAST_RETRY.max_attempts
    assert trigger.calls["run-0"] == FAST_RETRY.max_attempts


async def test_a_401_stops_sending_and_unsent_runs_get_no_line(tmp_path: Path) -> None:
    trigger = SpyTrigger(
        {"run-0": [api_error(401, transient=False, code="InvalidAuthenticationToken")]}
    )
    scheduler, lines, _ = await run_scheduler(tmp_path, trigger, specs(100), concurrency=4)
    assert scheduler.auth_failed is not None
    assert scheduler.auth_failed.code == "InvalidAuthenticationToken"
    assert lines[0]["id"] == "run-0"
    assert lines[0]["status"] == "failed"
    # stops sending: nothing after the 401 but what was already on the wire with it
    assert sum(trigger.calls.values()) <= 4
    assert len(lines) == sum(trigger.calls.values())


async def test_stop_lets_in_flight_requests_finish_and_dispatches_no_more(tmp_path: Path) -> None:
    trigger = SpyTrigger()
    trigger.release.clear()
    report = tmp_path / "report.jsonl"
    runs = specs(100)
    with scheduler_writing(
        report, trigger, settings=QUICK_STOP, progress=Progress(total=len(runs))
    ) as scheduler:
        work = asyncio.ensure_future(scheduler.run(runs))
        for _ in range(4):
            await trigger.entered.acquire()
        scheduler.stop()
        trigger.release.set()
        await work
    lines = report.read_text().splitlines()
    assert len(lines) == 4
    assert sum(trigger.calls.values()) == 4


async def test_a_paused_subscription_does_not_hold_up_another(tmp_path: Path) -> None:
    # sub-0's runs are all throttled with a long Retry-After (within --max-retry-time); sub-1's
    # must finish
    long_429 = ApiError(
        status=429, code="SubscriptionRequestsThrottled", message="m", transient=True,
        sent=False, retry_after=300,
    )  # fmt: skip
    runs = specs(40, subscriptions=2)
    trigger = SpyTrigger({spec.id: [long_429] for spec in runs if spec.subscription == "sub-0"})
    report = tmp_path / "report.jsonl"
    with scheduler_writing(
        report, trigger, settings=QUICK_STOP, progress=Progress(total=len(runs))
    ) as scheduler:
        work = asyncio.ensure_future(scheduler.run(runs))
        for _ in range(10_000):
            ids = [json.loads(line)["id"] for line in report.read_text().splitlines()]
            if len(ids) == 20:
                break
            await asyncio.sleep(0)
        scheduler.stop()
        await work
    assert sorted(ids) == sorted(spec.id for spec in runs if spec.subscription == "sub-1")


class GuardReadHeld(SpyTrigger):
    """The recovery guard's read of the reference run waits until the test lets it answer."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = asyncio.Event()
        self.answer = asyncio.Event()

    async def get_pipeline_run(self, **_: Any) -> dict[str, Any]:
        self.reading.set()
        await self.answer.wait()
        return {
            "runId": "ref-1", "pipelineName": "LoadOrders", "status": "Failed",
            "isLatest": True, "runStart": "2026-11-26T01:00:00Z",
        }  # fmt: skip


async def test_a_stop_during_the_first_attempts_guard_sends_nothing(tmp_path: Path) -> None:
    # the subscription's pacer must exist before the first send, or stop() could not close it
    trigger = GuardReadHeld()
    recovery = RunSpec(
        id="rerun", subscription="sub-0", resource_group="rg", factory="factory-a",
        pipeline="LoadOrders", reference_run_id="ref-1", is_recovery=True,
    )  # fmt: skip
    report = tmp_path / "report.jsonl"
    with scheduler_writing(
        report, trigger, settings=QUICK_STOP, progress=Progress(total=1)
    ) as scheduler:
        work = asyncio.ensure_future(scheduler.run([recovery]))
        await trigger.reading.wait()
        scheduler.stop()
        trigger.answer.set()
        await work
    assert trigger.calls["rerun"] == 0
    assert report.read_text() == ""


class ReserveLeft(SpyTrigger):
    """Every answer says 3 writes are left: the pacer's reserve, and no refill."""

    async def create_run(self, spec: RunSpec, *, client_request_id: str) -> CreateRunResponse:
        answer = await super().create_run(spec, client_request_id=client_request_id)
        return dataclasses.replace(answer, limits=RateLimits(writes=3))


async def test_a_subscriptions_last_runs_spend_the_reserve_its_header_counted(
    tmp_path: Path,
) -> None:
    # 4 go before any header; the 2 left fit in the 3 writes the headers count: they go as
    # soon as nothing is in flight, without the probe a kept reserve would wait for
    time = FakeTime()
    trigger = ReserveLeft()
    with ReportWriter.open(tmp_path / "report.jsonl", resume=False) as writer:
        scheduler = Scheduler(
            trigger=trigger,
            writer=writer,
            settings=QUICK_STOP,
            progress=Progress(total=6),
            reader=trigger,
            pacers=Pacers(clock=time.monotonic, sleep=time.sleep),
        )
        await asyncio.wait_for(scheduler.run(specs(6)), timeout=30)
    assert sum(trigger.calls.values()) == 6
    assert time.slept == []


class SlowAnswers(SpyTrigger):
    """Every createRun takes 0.05 s of the fake clock; the header says 40 writes are left."""

    def __init__(self, time: FakeTime) -> None:
        super().__init__()
        self.time = time

    async def create_run(self, spec: RunSpec, *, client_request_id: str) -> CreateRunResponse:
        answer = await super().create_run(spec, client_request_id=client_request_id)
        self.time.advance(0.05)
        return dataclasses.replace(answer, limits=RateLimits(writes=40))


class DatingPacer(SubscriptionPacer):
    dated: ClassVar[list[tuple[float | None, float]]] = []

    def completed(self, remaining: int | None, *, sent_at: float | None = None) -> None:
        self.dated.append((sent_at, self.now()))
        super().completed(remaining, sent_at=sent_at)


class DatingPacers(Pacers):
    def __getitem__(self, subscription: str) -> SubscriptionPacer:
        return self._by_subscription.setdefault(
            subscription, DatingPacer(clock=self._clock, sleep=self._sleep)
        )


async def test_the_pacer_dates_each_header_by_when_its_request_left(tmp_path: Path) -> None:
    time = FakeTime()
    trigger = SlowAnswers(time)
    DatingPacer.dated = []
    with ReportWriter.open(tmp_path / "report.jsonl", resume=False) as writer:
        scheduler = Scheduler(
            trigger=trigger,
            writer=writer,
            settings=QUICK_STOP,
            progress=Progress(total=3),
            reader=trigger,
            pacers=DatingPacers(clock=time.monotonic, sleep=time.sleep),
        )
        await asyncio.wait_for(scheduler.run(specs(3)), timeout=30)
    assert len(DatingPacer.dated) == 3
    for sent_at, answered_at in DatingPacer.dated:
        assert sent_at is not None
        assert answered_at - sent_at >= 0.05 - 1e-9  # the answer's time, not its own
