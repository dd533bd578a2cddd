"""Shared fixtures: the ADF emulator, as a real subprocess or in-process on 127.0.0.1; an aiohttp
session; a throwaway CA. Their types live in tests/helpers/emulator.py.

``start_emulator(*args)`` starts ``python -m batchrun.emulator --port 0 --host 127.0.0.1 *args``,
waits (bounded) for its ``listening on URL`` line and returns an :class:`EmulatorProcess`
(``.url``, ``.stats()``, ``.log()``, ``.stop()``); every process is terminated and reaped on
teardown. ``emulator`` is one started with ``--accept-any``.

``serve_emulator(topology=None, *, clock=None, history=(), **settings)`` serves the emulator
application in-process (aiohttp ``TestServer``) with a :class:`ManualClock`, for tests that
move time instead of sleeping; it returns an :class:`InProcessEmulator` (``.url``,
``.client``, ``.clock``, ``.state``).

A test that starts the CLI, the emulator or another Python as a subprocess is slow: it must be
marked ``e2e`` (``make test-fast`` leaves those out), and one that is not marked cannot start it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from batchrun.emulator import process
from batchrun.emulator.app import STATE, build_app
from batchrun.emulator.clock import Clock, ManualClock
from batchrun.emulator.config import Settings, Topology
from batchrun.emulator.process import READY_TIMEOUT_S, EmulatorProcess
from tests.helpers.emulator import InProcessEmulator, ServeEmulator, StartEmulator
from tests.helpers.paths import ROOT
from tests.helpers.tls import TlsFiles

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from batchrun.emulator.history import PastRun


@pytest.fixture(autouse=True)
def _subprocesses_only_in_e2e(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keeps the ``e2e`` marker true: an unmarked test that starts Python or batchrun fails."""
    if request.node.get_closest_marker("e2e") is not None:
        return
    popen_init = subprocess.Popen.__init__

    def guarded(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        argv = [args] if isinstance(args, str | bytes | os.PathLike) else list(args)
        program = Path(os.fsdecode(argv[0])).name if argv else ""
        if program.startswith("python") or program == "batchrun":
            raise AssertionError(
                f"{request.node.nodeid} starts a subprocess ({program}) but is not marked e2e: "
                "add @pytest.mark.e2e (or pytestmark = pytest.mark.e2e for a whole module)"
            )
        popen_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)


@pytest.fixture
def start_emulator(tmp_path: Path) -> Iterator[StartEmulator]:
    started: list[EmulatorProcess] = []

    def start(
        *args: str, timeout: float = READY_TIMEOUT_S, cafile: Path | None = None
    ) -> EmulatorProcess:
        log_path = tmp_path / f"emulator-{len(started)}.log"
        emulator = process.start(args, log_path=log_path, timeout=timeout, cwd=ROOT, cafile=cafile)
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(start_emulator: StartEmulator) -> EmulatorProcess:
    return start_emulator("--accept-any")


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


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return TlsFiles.issue(tmp_path)
