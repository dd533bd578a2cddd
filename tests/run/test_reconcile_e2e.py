"""Reconciliation end to end, the real CLI against the emulator: ADF's spelling of names and its
echo of default parameters, other people's manual runs, and a server clock that is not ours."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from batchrun.emulator.app import STATE, build_app
from batchrun.emulator.clock import ManualClock
from batchrun.emulator.config import Settings, Topology
from batchrun.emulator.history import load_history
from tests.helpers.adf_runs import factory_runs
from tests.helpers.cli import (
    CLI_TIMEOUT_S,
    IDENTITY_HEADER,
    SUB_A,
    CliRun,
    StartEmulator,
    one_factory,
    run_cli,
    start_configured,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from batchrun.emulator.process import EmulatorProcess
    from batchrun.emulator.state import EmulatorState

pytestmark = pytest.mark.e2e

FACTORY_PATH = (
    f"/subscriptions/{SUB_A}/resourceGroups/rg-data/providers/Microsoft.DataFactory"
    "/factories/factory-0"
)
TOPOLOGY = one_factory("""
LoadOrders:
  parameters:
    partition: {type: Int}
    full: {type: Bool, defaultValue: false}
    region: {type: String, defaultValue: eu}
    tables: {type: Array, defaultValue: [orders, refunds]}
""")


def manifest(count: int, *, pipeline: str = "loadorders") -> str:
    runs = "".join(
        f"  - {{pipeline: {pipeline}, parameters: {{partition: {n}, full: true}}}}\n"
        for n in range(count)
    )
    return (
        f"version: 1\ndefaults:\n  subscription: {SUB_A}\n  resource_group: rg-data\n"
        f"  factory: factory-0\nruns:\n{runs}"
    )


def all_runs(emulator: EmulatorProcess) -> list[dict[str, Any]]:
    """Every run of factory-0, paging to the end."""
    return factory_runs(emulator, subscription=SUB_A, resource_group="rg-data", factory="factory-0")


def test_lost_answers_under_adfs_spelling_and_defaults_make_no_duplicate_and_no_orphan(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start_configured(
        start_emulator, tmp_path, TOPOLOGY, "--seed", "5", "--quiet",
        "--drop-after-create", "0.15", "--fail-500-after-create", "0.15",
    )  # fmt: skip
    result = run_cli(tmp_path, emulator, manifest(120), "--reconcile-window", "3")
    assert result.code == 0, result.stderr[-2000:]
    lines = result.lines()
    stats = emulator.stats()
    assert stats["requests"]["createRun"].get("dropped", 0) > 0
    assert stats["requests"]["createRun"].get("500", 0) > 0
    assert stats["duplicates"] == 0
    assert stats["runs_created"] == 120
    created = all_runs(emulator)
    # ADF answers with its own spelling and lists the defaults we did not send
    assert {run["pipelineName"] for run in created} == {"LoadOrders"}
    assert {run["parameters"]["region"] for run in created} == {"eu"}
    assert {line["status"] for line in lines} == {"succeeded"}
    assert sorted(line["run_id"] for line in lines) == sorted(run["runId"] for run in created)
    assert sum(1 for line in lines if line.get("reconciled")) > 0


# --- someone else's manual run, and the server's clock ------------------------------------------


@dataclass
class ThreadedEmulator:
    """The emulator application served from a thread, so that the CLI can run as a subprocess
    while the test moves the emulator's clock between batches."""

    url: str
    clock: ManualClock
    state: EmulatorState

    def batch(self, tmp_path: Path, text: str, *args: str, report_name: str) -> CliRun:
        """``batchrun run`` as a subprocess against this emulator (as tests.helpers.cli does)."""
        path = tmp_path / "manifest.yaml"
        path.write_text(text)
        report = tmp_path / report_name
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "MSI_"))}
        env |= {
            "IDENTITY_ENDPOINT": f"{self.url}/msi/token",
            "IDENTITY_HEADER": IDENTITY_HEADER,
            "BATCHRUN_ENDPOINT": self.url,
        }
        command = [sys.executable, "-m", "batchrun", "run", str(path), "--report", str(report)]
        done = subprocess.run(
            [*command, "--log-format", "json", *args], env=env, capture_output=True, text=True,
            timeout=CLI_TIMEOUT_S, check=False,
        )  # fmt: skip
        return CliRun(done.returncode, done.stdout, done.stderr, report)


@pytest.fixture
def serve_in_thread(tmp_path: Path) -> Iterator[Any]:
    loops: list[tuple[asyncio.AbstractEventLoop, web.AppRunner, threading.Thread]] = []

    def serve(clock: ManualClock, history: Path, **settings: Any) -> ThreadedEmulator:
        options: dict[str, Any] = {
            "quiet": True,
            "accept_any": True,
            "identity_header": IDENTITY_HEADER,
        }
        topology = Topology(accept_any=True)
        app = build_app(
            Settings(**(options | settings)),
            topology,
            clock=clock,
            history=load_history(history, topology),
        )
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        loops.append((loop, runner, thread))
        port = runner.addresses[0][1]
        return ThreadedEmulator(f"http://127.0.0.1:{port}", clock, app[STATE])

    yield serve
    for loop, runner, thread in loops:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def seed_manual_run(tmp_path: Path, started: datetime) -> tuple[Path, str]:
    """A failed manual run of LoadOrders with partition 0 and full true, started at ``started``."""
    run_id = "0f0f0f0f-0000-4000-8000-000000000003"
    run = {
        "factory": FACTORY_PATH,
        "pipelineName": "LoadOrders",
        "runId": run_id,
        "status": "Failed",
        "runStart": started.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "runEnd": (started + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "parameters": {"partition": 0, "full": True},
        "message": "Operation on target CopyOrders failed",
    }
    path = tmp_path / "history.json"
    path.write_text(json.dumps([run]))
    return path, run_id


def emulator_now(clock: ManualClock) -> datetime:
    return datetime.fromtimestamp(clock.time(), UTC)


FAST = ("--max-attempts", "3", "--reconcile-window", "1", "--read-timeout", "5")


@pytest.mark.parametrize("fault", ["fail_500", "fail_500_after_create"])
def test_a_failed_manual_run_three_minutes_old_is_never_claimed(
    tmp_path: Path, serve_in_thread: Any, fault: str
) -> None:
    clock = ManualClock(time.time())
    history, foreign = seed_manual_run(tmp_path, emulator_now(clock) - timedelta(minutes=3))
    emulator = serve_in_thread(clock, history, seed=3, **{fault: 1.0})
    result = emulator.batch(tmp_path, manifest(1, pipeline="LoadOrders"), *FAST, report_name="r")
    (line,) = result.lines()
    assert line.get("run_id") != foreign
    ours = [run["runId"] for run in all_runs(emulator) if run["runId"] != foreign]
    if fault == "fail_500":  # nothing was created: the run failed, it did not take the old one
        assert (result.code, line["status"], ours) == (1, "failed", [])
    else:  # created, then a 500: found, and it is ours
        assert result.code == 0, result.stderr[-2000:]
        assert (line["status"], line["reconciled"], [line["run_id"]]) == ("succeeded", True, ours)
    assert emulator.state.stats.snapshot()["duplicates"] == 0


@pytest.mark.parametrize("skew", [timedelta(0), timedelta(hours=-5), timedelta(hours=3)])
def test_two_batches_21_seconds_apart_never_record_the_same_run(
    tmp_path: Path, serve_in_thread: Any, skew: timedelta
) -> None:
    clock = ManualClock(time.time() + skew.total_seconds())
    history, foreign = seed_manual_run(tmp_path, emulator_now(clock) - timedelta(minutes=3))
    emulator = serve_in_thread(clock, history, seed=3, fail_500_after_create=1.0)
    first = emulator.batch(tmp_path, manifest(1), *FAST, report_name="1.jsonl")
    clock.advance(21)
    second = emulator.batch(tmp_path, manifest(1), *FAST, report_name="2.jsonl")
    assert (first.code, second.code) == (0, 0), second.stderr[-2000:]
    [one], [two] = first.lines(), second.lines()
    ours = {run["runId"] for run in all_runs(emulator)} - {foreign}
    assert len(ours) == 2
    assert {one["run_id"], two["run_id"]} == ours
    assert one["reconciled"] and two["reconciled"]
