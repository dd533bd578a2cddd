"""Stopping stops sending: after stop(), a 401 or a token that cannot be had, nothing more leaves;
every pacer turn is given back; a task's unexpected error stops the batch loudly."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from batchrun.arm.client import CreateRunResponse, QueryResponse, RateLimits
from batchrun.arm.pacing import Pacers
from batchrun.arm.retry import RetrySettings
from batchrun.errors import ApiError, AuthError
from batchrun.model import RunSpec
from batchrun.report.writer import ReportWriter
from batchrun.run.journal import BatchIdentity, Journal
from batchrun.run.progress import Progress
from batchrun.run.reconcile import ReconcileSettings
from batchrun.run.scheduler import Scheduler, SchedulerSettings
from tests.helpers.scheduling import report_lines

if TYPE_CHECKING:
    from pathlib import Path

SETTINGS = SchedulerSettings(
    concurrency=2,
    retry=RetrySettings(max_attempts=3, backoff_initial_s=0.001, backoff_max_s=0.002),
    reconcile=ReconcileSettings(window_s=0.0),
)
# a bound on a test that would otherwise hang, never a wait for something to happen
HANG_S = 10


def specs(count: int, *, subscriptions: int = 1) -> list[RunSpec]:
    return [
        RunSpec(
            id=f"run-{n}", subscription=f"sub-{n % subscriptions}", resource_group="rg",
            factory="factory-a", pipeline="LoadOrders", parameters={"n": n},
        )
        for n in range(count)
    ]  # fmt: skip


class HeldTrigger:
    """Answers the first ``free`` calls at once, with a large write budget; holds the rest on
    the wire until ``release`` is set. ``fail`` maps a call number to what it raises."""

    def __init__(self, *, free: int = 0, fail: dict[int, BaseException] | None = None) -> None:
        self.free = free
        self.fail = fail or {}
        self.calls: list[str] = []
        self.on_wire = 0
        self.release = asyncio.Event()

    async def create_run(self, spec: RunSpec, *, client_request_id: str) -> CreateRunResponse:
        number = len(self.calls)
        self.calls.append(spec.id)
        self.on_wire += 1
        try:
            if number in self.fail:
                raise self.fail[number]
            if number >= self.free:
                await self.release.wait()
            return CreateRunResponse(f"adf-{spec.id}", 200, None, None, RateLimits(writes=1000))
        finally:
            self.on_wire -= 1

    async def query_pipeline_runs(self, **_: Any) -> QueryResponse:
        return QueryResponse([], None, RateLimits(), None)

    async def get_pipeline_run(self, **_: Any) -> dict[str, Any]:
        raise AssertionError("not needed")


async def settle() -> None:
    """Let every task that can move do so (loop turns, not time)."""
    for _ in range(200):
        await asyncio.sleep(0)


def scheduler(tmp_path: Path, trigger: HeldTrigger, runs: int, **kwargs: Any) -> Scheduler:
    writer = ReportWriter.open(tmp_path / "report.jsonl", resume=False)
    return Scheduler(
        trigger=trigger, writer=writer, settings=SETTINGS, progress=Progress(total=runs),
        reader=trigger, **kwargs,
    )  # fmt: skip


async def test_after_stop_only_the_requests_on_the_wire_are_sent(tmp_path: Path) -> None:
    # four answers show a large budget: the pacer then lets every task through, and those
    # beyond the two slots wait for one
    trigger = HeldTrigger(free=4)
    batch = scheduler(tmp_path, trigger, 100)
    work = asyncio.ensure_future(batch.run(specs(100)))
    await settle()
    on_wire, sent = trigger.on_wire, len(trigger.calls)
    assert on_wire == 2
    batch.stop()
    trigger.release.set()
    await asyncio.wait_for(work, HANG_S)
    assert len(trigger.calls) - sent == 0
    assert len(report_lines(tmp_path / "report.jsonl")) == sent


async def test_an_intent_is_written_only_for_a_request_about_to_leave(tmp_path: Path) -> None:
    trigger = HeldTrigger(free=4)
    identity = BatchIdentity("fingerprint", "m.yaml", None)
    with Journal.open(tmp_path / "report.jsonl", identity, resume=False) as journal:
        batch = scheduler(tmp_path, trigger, 100, journal=journal)
        work = asyncio.ensure_future(batch.run(specs(100)))
        await settle()
        # two on the wire, more past the pacer waiting for a slot: only the sent have intents
        assert trigger.on_wire == 2
        assert intents(tmp_path) == Counter(trigger.calls)
        batch.stop()
        trigger.release.set()
        await asyncio.wait_for(work, HANG_S)
    assert intents(tmp_path) == Counter(trigger.calls)


def intents(tmp_path: Path) -> Counter[str]:
    journal_lines = (tmp_path / "report.jsonl.journal").read_text().splitlines()
    return Counter(json.loads(line)["id"] for line in journal_lines[1:])


async def test_no_token_mid_batch_stops_it_and_gives_every_pacer_turn_back(
    tmp_path: Path,
) -> None:
    pacers = Pacers()
    trigger = HeldTrigger(free=100, fail={10: AuthError("no token for scope x: endpoint down")})
    batch = scheduler(tmp_path, trigger, 100, pacers=pacers)
    await asyncio.wait_for(batch.run(specs(100)), HANG_S)
    assert batch.auth_failed is not None
    assert batch.auth_failed.code == "NoToken"
    assert "endpoint down" in batch.auth_failed.message
    lines = report_lines(tmp_path / "report.jsonl")
    assert len(lines) < 100
    # the run that could not get its token has no line: --resume sends it
    assert trigger.calls[10] not in {line["id"] for line in lines}
    assert {line["status"] for line in lines} == {"succeeded"}
    assert pacers["sub-0"].available(0.0) is not None
    assert pacers["sub-0"].delay(10**9) == 0.0  # nothing counted in flight for ever


async def test_an_unexpected_error_in_a_run_stops_the_batch_and_is_raised(tmp_path: Path) -> None:
    trigger = HeldTrigger(free=100, fail={5: RuntimeError("a bug")})
    batch = scheduler(tmp_path, trigger, 100)
    with pytest.raises(RuntimeError, match="a bug"):
        await asyncio.wait_for(batch.run(specs(100)), HANG_S)
    assert len(trigger.calls) < 100


def tenant_401(subscription: str) -> ApiError:
    return ApiError(
        status=401,
        code="InvalidAuthenticationTokenTenant",
        message=(
            "The access token is from the wrong issuer 'https://sts.windows.net/aaa/'. It must "
            f"match the tenant associated with subscription {subscription}. Please use the "
            "authority (URL) 'https://login.windows.net/0b5ee2ba-1111-4222-8333-944444444444'"
        ),
        sent=False,
    )


class TenantTrigger(HeldTrigger):
    async def create_run(self, spec: RunSpec, *, client_request_id: str) -> CreateRunResponse:
        if spec.subscription == "sub-1":
            self.calls.append(spec.id)
            raise tenant_401(spec.subscription)
        return await super().create_run(spec, client_request_id=client_request_id)


async def test_a_wrong_tenant_stops_that_subscription_only(tmp_path: Path) -> None:
    trigger = TenantTrigger(free=1000)
    batch = scheduler(tmp_path, trigger, 90)
    await asyncio.wait_for(batch.run(specs(90, subscriptions=3)), HANG_S)
    assert batch.auth_failed is None
    lines = report_lines(tmp_path / "report.jsonl")
    assert len(lines) == 90
    statuses = {(line["subscription"], line["status"]) for line in lines}
    assert statuses == {("sub-0", "succeeded"), ("sub-2", "succeeded"), ("sub-1", "failed")}
    foreign = [line for line in lines if line["subscription"] == "sub-1"]
    assert all(
        "AZURE_TENANT_ID=0b5ee2ba-1111-4222-8333-944444444444" in line["error"]["message"]
        for line in foreign
    )
    # the first refusal stops the subscription's sending: only what was on its way went
    foreign_ids = {line["id"] for line in foreign}
    assert sum(1 for spec_id in trigger.calls if spec_id in foreign_ids) <= 4
