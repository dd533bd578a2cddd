"""The real `batchrun` CLI as a subprocess against an emulator process: its environment (the
emulator's managed identity, never the developer's), a manifest of N runs, and what came out.
Tests that use these are slow: mark them ``e2e``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.helpers.emulator import StartEmulator, emulator_config

if TYPE_CHECKING:
    from pathlib import Path

    from batchrun.emulator.process import EmulatorProcess

__all__ = [
    "CANARY",
    "CLI_TIMEOUT_S",
    "FAST",
    "IDENTITY_HEADER",
    "SUB_A",
    "SUB_B",
    "CliResult",
    "CliRun",
    "StartEmulator",
    "answers",
    "batchrun",
    "cli_env",
    "create_answers",
    "last_lines",
    "manifest_text",
    "one_factory",
    "requests",
    "run_cli",
    "start",
    "start_configured",
    "start_stalling",
]

CLI_TIMEOUT_S = 180
SUB_A = "11111111-1111-1111-1111-111111111111"
SUB_B = "22222222-2222-2222-2222-222222222222"
IDENTITY_HEADER = "e2e-identity-secret"
CANARY = "canary-token-0123456789abcdef"
# `--wait`, `watch` and `cancel` against runs that last a second or so: poll often, log little
FAST = ("--poll", "0.2", "--log-level", "warning")


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@dataclass
class CliRun(CliResult):
    report: Path

    def lines(self) -> list[dict[str, Any]]:
        if not self.report.exists():
            return []
        return [json.loads(line) for line in self.report.read_text().splitlines()]


def manifest_text(count: int, *, subscriptions: tuple[str, ...] = (SUB_A,), **extra: str) -> str:
    runs = []
    for n in range(count):
        sub = subscriptions[n % len(subscriptions)]
        fields = {"factory": f"factory-{n % 3}", "pipeline": "LoadOrders", **extra}
        body = "".join(f"    {key}: {value}\n" for key, value in fields.items())
        runs.append(f"  - subscription: {sub}\n{body}    parameters: {{partition: {n}}}\n")
    return "version: 1\ndefaults:\n  resource_group: rg-data\nruns:\n" + "".join(runs)


def cli_env(
    emulator: EmulatorProcess,
    *,
    identity: EmulatorProcess | None = None,
    identity_header: str = IDENTITY_HEADER,
) -> dict[str, str]:
    """The environment of a CLI run: the emulator's managed identity, never the developer's;
    the emulator reached directly, never through the developer's proxy."""
    drop = ("AZURE_", "MSI_", "IDENTITY_", "BATCHRUN_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env |= {
        "IDENTITY_ENDPOINT": f"{(identity or emulator).url}/msi/token",
        "IDENTITY_HEADER": identity_header,
        "BATCHRUN_ENDPOINT": emulator.url,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    return env


def batchrun(
    emulator: EmulatorProcess,
    *args: str,
    cwd: Path | None = None,
    identity: EmulatorProcess | None = None,
    identity_header: str = IDENTITY_HEADER,
) -> CliResult:
    """``python -m batchrun ARGS --log-format json`` against ``emulator``, bounded in time."""
    env = cli_env(emulator, identity=identity, identity_header=identity_header)
    done = subprocess.run(
        [sys.executable, "-m", "batchrun", *args, "--log-format", "json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def run_cli(
    tmp_path: Path,
    emulator: EmulatorProcess,
    manifest: str,
    *args: str,
    identity: EmulatorProcess | None = None,
    report_name: str = "report.jsonl",
) -> CliRun:
    manifest_path = tmp_path / "manifest.yaml"
    manifest_path.write_text(manifest)
    report = tmp_path / report_name
    done = batchrun(
        emulator, "run", str(manifest_path), "--report", str(report), *args, identity=identity
    )
    return CliRun(done.code, done.stdout, done.stderr, report)


def start(start_emulator: StartEmulator, *args: str) -> EmulatorProcess:
    return start_emulator("--identity-header", IDENTITY_HEADER, *args)


def last_lines(report: Path) -> dict[str, dict[str, Any]]:
    """Each run id's last report line (its outcome line, once it has one)."""
    last: dict[str, dict[str, Any]] = {}
    for line in report.read_text().splitlines():
        record = json.loads(line)
        last[record["id"]] = record
    return last


def answers(emulator: EmulatorProcess, route: str) -> dict[str, int]:
    """The emulator's answers on ``route`` (``createRun``, ``queryPipelineRuns``...) by status."""
    by_status: dict[str, int] = emulator.stats()["requests"].get(route, {})
    return by_status


def start_stalling(start_emulator: StartEmulator) -> EmulatorProcess:
    """An emulator that creates every run and then stalls its answer for a minute: the
    requests stay on the wire until the client stops waiting for them."""
    return start(
        start_emulator, "--accept-any", "--quiet", "--write-burst", "5000",
        "--stall-after-create", "1.0", "--stall-ms", "60000",
    )  # fmt: skip


def create_answers(emulator: EmulatorProcess) -> dict[str, int]:
    return answers(emulator, "createRun")


def requests(emulator: EmulatorProcess, route: str) -> int:
    """How many requests the emulator answered on ``route``, whatever the answer."""
    return sum(answers(emulator, route).values())


def one_factory(pipelines: str, *, settings: str = "") -> str:
    """An emulator config of one factory, ``factory-0`` in ``rg-data`` of ``SUB_A``, with these
    pipelines (YAML, one ``Name: {...}`` entry a pipeline) and these ``settings`` (a YAML map)."""
    return emulator_config({(SUB_A, "rg-data", "factory-0"): pipelines}, settings=settings)


def start_configured(
    start_emulator: StartEmulator, tmp_path: Path, config: str, *args: str
) -> EmulatorProcess:
    """An emulator process whose topology (and settings) come from the YAML text ``config``."""
    path = tmp_path / "emulator.yaml"
    path.write_text(config)
    return start(start_emulator, "--config", str(path), *args)


def batchrun_offline(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real CLI with no emulator behind it: for usage errors, help and options."""
    return subprocess.run(
        [sys.executable, "-m", "batchrun", *args],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False, env=env,
    )  # fmt: skip
