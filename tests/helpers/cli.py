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

from tests.helpers.emulator import StartEmulator

if TYPE_CHECKING:
    from pathlib import Path

    from batchrun.emulator.process import EmulatorProcess

__all__ = [
    "CANARY",
    "CLI_TIMEOUT_S",
    "IDENTITY_HEADER",
    "SUB_A",
    "SUB_B",
    "CliResult",
    "CliRun",
    "StartEmulator",
    "batchrun",
    "cli_env",
    "create_answers",
    "manifest_text",
    "run_cli",
    "start",
    "write_topology",
]

CLI_TIMEOUT_S = 180
SUB_A = "11111111-1111-1111-1111-111111111111"
SUB_B = "22222222-2222-2222-2222-222222222222"
IDENTITY_HEADER = "e2e-identity-secret"
CANARY = "canary-token-0123456789abcdef"


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


def create_answers(emulator: EmulatorProcess) -> dict[str, int]:
    answers: dict[str, int] = emulator.stats()["requests"].get("createRun", {})
    return answers


def write_topology(tmp_path: Path) -> Path:
    config = tmp_path / "topology.yaml"
    config.write_text(
        f"""
subscriptions:
  {SUB_A}:
    resource_groups:
      rg-data:
        factories:
          factory-0:
            pipelines:
              LoadOrders: {{parameters: [partition]}}
"""
    )
    return config


def batchrun_offline(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real CLI with no emulator behind it: for usage errors, help and options."""
    return subprocess.run(
        [sys.executable, "-m", "batchrun", *args],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False, env=env,
    )  # fmt: skip
