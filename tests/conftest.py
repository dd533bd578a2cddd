"""Shared fixtures: the ADF emulator, as a real subprocess or in-process on 127.0.0.1.

``start_emulator(*args)`` starts ``python -m batchrun.emulator --port 0 --host 127.0.0.1 *args``,
waits (bounded) for its ``listening on URL`` line and returns an :class:`EmulatorProcess`
(``.url``, ``.stats()``, ``.log()``, ``.stop()``); every process is terminated and reaped on
teardown. ``emulator`` is one started with ``--accept-any``.

``serve_emulator(topology=None, *, clock=None, history=(), **settings)`` serves the emulator
application in-process (aiohttp ``TestServer``) with a :class:`ManualClock`, for tests that
move time instead of sleeping; it returns an :class:`InProcessEmulator` (``.url``,
``.client``, ``.clock``, ``.state``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from batchrun.emulator import process
from batchrun.emulator.app import STATE, build_app
from batchrun.emulator.clock import Clock, ManualClock
from batchrun.emulator.config import Settings, Topology
from batchrun.emulator.history import PastRun
from batchrun.emulator.process import READY_TIMEOUT_S, EmulatorProcess
from batchrun.emulator.state import EmulatorState

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def start_emulator(tmp_path: Path) -> Iterator[Callable[..., EmulatorProcess]]:
    started: list[EmulatorProcess] = []

    def start(*args: str, timeout: float = READY_TIMEOUT_S) -> EmulatorProcess:
        log_path = tmp_path / f"emulator-{len(started)}.log"
        emulator = process.start(args, log_path=log_path, timeout=timeout, cwd=ROOT)
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(start_emulator: Callable[..., EmulatorProcess]) -> EmulatorProcess:
    return start_emulator("--accept-any")


@dataclass
class InProcessEmulator:
    client: TestClient[Any, Any]
    clock: Clock
    state: EmulatorState

    @property
    def url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    @property
    def manual_clock(self) -> ManualClock:
        assert isinstance(self.clock, ManualClock), "served with a real clock"
        return self.clock


ServeEmulator = Callable[..., Awaitable[InProcessEmulator]]


@pytest.fixture
async def serve_emulator() -> AsyncIterator[ServeEmulator]:
    clients: list[TestClient[Any, Any]] = []

    async def serve(
        topology: Topology | None = None,
        *,
        clock: Clock | None = None,
        history: Sequence[PastRun] = (),
        **settings: Any,
    ) -> InProcessEmulator:
        clock = clock or ManualClock()
        options = {"accept_any": topology is None, "quiet": True, **settings}
        app = build_app(Settings(**options), topology or Topology(), clock=clock, history=history)
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return InProcessEmulator(client, clock, app[STATE])

    yield serve
    for client in clients:
        await client.close()
