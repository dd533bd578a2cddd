"""The emulator as tests hold it: the types of the ``start_emulator`` and ``serve_emulator``
fixtures (tests/conftest.py), what they give back, and a start that must fail.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from batchrun.emulator.clock import Clock, ManualClock
from tests.helpers.paths import ROOT

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from aiohttp.test_utils import TestClient

    from batchrun.emulator.config import Topology
    from batchrun.emulator.history import PastRun
    from batchrun.emulator.process import EmulatorProcess
    from batchrun.emulator.state import EmulatorState

# a start that fails reads its config and stops; this only bounds a hang
EXIT_TIMEOUT_S = 30


class StartEmulator(Protocol):
    """``start_emulator(*args)``: ``python -m batchrun.emulator *args`` on a free port."""

    def __call__(
        self, *args: str, timeout: float = ..., cafile: Path | None = None
    ) -> EmulatorProcess: ...


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


class ServeEmulator(Protocol):
    """``serve_emulator(topology=None, *, clock=None, history=(), **settings)``, in-process."""

    async def __call__(
        self,
        topology: Topology | None = None,
        *,
        clock: Clock | None = None,
        history: Sequence[PastRun] = (),
        **settings: Any,
    ) -> InProcessEmulator: ...


def emulator_exit(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m batchrun.emulator --port 0 *args`` for a start that must fail: how it ended."""
    return subprocess.run(
        [sys.executable, "-m", "batchrun.emulator", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT_S,
        cwd=ROOT,
        check=False,
    )
