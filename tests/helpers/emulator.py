"""The emulator as tests hold it: the types of the ``start_emulator`` and ``serve_emulator``
fixtures (tests/conftest.py), what they give back, a start that must fail, its config as YAML
text, and batchrun's own client to it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from batchrun.arm.client import AdfClient
from batchrun.arm.timeouts import Timeouts
from batchrun.emulator.clock import Clock, ManualClock
from tests.helpers.paths import ROOT
from tests.helpers.tokens import StaticTokens

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    import aiohttp
    from aiohttp.test_utils import TestClient

    from batchrun.emulator.config import Topology
    from batchrun.emulator.history import PastRun
    from batchrun.emulator.process import EmulatorProcess
    from batchrun.emulator.state import EmulatorState

# a start that fails reads its config and stops; this only bounds a hang
EXIT_TIMEOUT_S = 30


def emulator_config(factories: Mapping[tuple[str, str, str], str], *, settings: str = "") -> str:
    """The YAML text of an emulator config: for each (subscription, resource group, factory),
    its pipelines (YAML, one ``Name: ...`` entry a pipeline, at any indentation); ``settings``
    a YAML map, if any."""
    tree: dict[str, dict[str, dict[str, str]]] = {}
    for (subscription, group, factory), pipelines in factories.items():
        tree.setdefault(subscription, {}).setdefault(group, {})[factory] = pipelines
    lines = [f"settings: {settings}"] if settings else []
    lines.append("subscriptions:")
    for subscription, groups in tree.items():
        lines += [f"  {subscription}:", "    resource_groups:"]
        for group, named in groups.items():
            lines += [f"      {group}:", "        factories:"]
            for factory, pipelines in named.items():
                lines += [f"          {factory}:", "            pipelines:"]
                body = textwrap.dedent(pipelines).strip("\n")
                lines += textwrap.indent(body, " " * 14).splitlines()
    return "\n".join(lines) + "\n"


def emulator_client(session: aiohttp.ClientSession, url: str) -> AdfClient:
    """batchrun's own ADF client to the emulator at ``url``: any token, 5 s timeouts."""
    timeouts = Timeouts(connect_s=5, read_s=5)
    return AdfClient(session=session, endpoint=url, tokens=StaticTokens(), timeouts=timeouts)


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
