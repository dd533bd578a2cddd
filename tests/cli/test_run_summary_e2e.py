"""The summary `batchrun run` prints at its end is `batchrun summary REPORT`'s, also when
`--resume` appended to a report that already held lines."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.helpers.cli import (
    CLI_TIMEOUT_S,
    SUB_A,
    StartEmulator,
    one_factory,
    run_cli,
    start_configured,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e

TOPOLOGY = one_factory("LoadOrders: {parameters: [partition]}")
MANIFEST = f"""version: 1
defaults: {{subscription: {SUB_A}, resource_group: rg-data, factory: factory-0}}
runs:
  - {{id: a, pipeline: LoadOrders, parameters: {{partition: 1}}}}
  - {{id: b, pipeline: LoadOrders, parameters: {{partition: 2}}}}
  - {{id: c, pipeline: NotYetDeployed}}
"""


def summary_of(report: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchrun", "summary", str(report)],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip


def test_a_resumed_batch_prints_the_summary_of_its_whole_report(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start_configured(start_emulator, tmp_path, TOPOLOGY)
    first = run_cli(tmp_path, emulator, MANIFEST)
    assert first.code == 1, first.stderr
    # a new report's summary is tallied as its lines are written, not read back: the same text
    fresh = summary_of(first.report)
    assert fresh.stdout.startswith("3 runs (3 report lines): 2 succeeded, 1 failed")
    assert first.stdout.endswith(f"\n\n{fresh.stdout}report: {first.report}\n")

    resumed = run_cli(tmp_path, emulator, MANIFEST, "--resume")
    assert resumed.code == 1, resumed.stderr
    assert len(resumed.lines()) == 4  # c failed twice: the summary counts its last line once

    summary = summary_of(resumed.report)
    assert summary.returncode == 1, summary.stderr
    assert summary.stdout.startswith("3 runs (4 report lines): 2 succeeded, 1 failed")
    # the run's own ending: a blank line, the summary, then the report's path
    assert resumed.stdout.endswith(f"\n\n{summary.stdout}report: {resumed.report}\n")
