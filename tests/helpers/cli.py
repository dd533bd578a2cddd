"""The real `batchrun` CLI as a subprocess against an emulator process: its environment (the
emulator's managed identity, never the developer's), a manifest of N runs, and what came out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchrun.emulator.process import EmulatorProcess

CLI_TIMEOUT_S = 180
SUB_A = "11111111-1111-1111-1111-111111111111"
SUB_B = "22222222-2222-2222-2222-222222222222"
IDENTITY_HEADER = "e2e-identity-secret"
CANARY = "canary-token-0123456789abcdef"

StartEmulator = Callable[..., EmulatorProcess]


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str
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
    emulator: EmulatorProcess, *, identity: EmulatorProcess | None = None
) -> dict[str, str]:
    """The environment of a CLI run: the emulator's managed identity, never the developer's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "MSI_"))}
    env |= {
        "IDENTITY_ENDPOINT": f"{(identity or emulator).url}/msi/token",
        "IDENTITY_HEADER": IDENTITY_HEADER,
        "BATCHRUN_ENDPOINT": emulator.url,
    }
    return env


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
    env = cli_env(emulator, identity=identity)
    command = [sys.executable, "-m", "batchrun", "run", str(manifest_path)]
    command += ["--report", str(report), "--log-format", "json", *args]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False
    )
    return CliRun(done.returncode, done.stdout, done.stderr, report)


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
