"""A newcomer's first hour, end to end: the emulator with no flags, the preflight against it, the
demo's printed command, and the messages that used to say too little."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from batchrun.cli.main import build_parser
from tests.helpers.cli import (
    CANARY,
    CLI_TIMEOUT_S,
    IDENTITY_HEADER,
    SUB_A,
    SUB_B,
    StartEmulator,
    batchrun,
)
from tests.helpers.paths import ROOT

if TYPE_CHECKING:
    from pathlib import Path

    from batchrun.emulator.process import EmulatorProcess

pytestmark = pytest.mark.e2e

# every line of it is where the preflight must point (the queue flood is appended)
NIGHT = f"""\
version: 1
defaults:
  subscription: {SUB_A}
  resource_group: rg-data
  parameters: {{run_date: "2026-11-26"}}
runs:
  - {{id: fine, factory: sales-eu, pipeline: LoadOrders, parameters: {{partition: 1}}}}
  - {{id: gone, factory: sales-eu, pipeline: LoadRefunds, parameters: {{partition: 1}}}}
  - {{id: t, factory: sales-us, pipeline: LoadInvoices, parameters: {{partition: 1, regoin: eu}}}}
  - {{id: short, factory: sales-us, pipeline: BuildMarts}}
"""
FLOOD_FROM = 11  # 104 runs fit ExportReports (concurrency 4 + 100 queued): the 105th is line 115


def night(tmp_path: Path) -> Path:
    flood = "".join(
        f"  - {{id: export-{n}, subscription: {SUB_B}, factory: finance-core, "
        f"pipeline: ExportReports, parameters: {{partition: {n}}}}}\n"
        for n in range(105)
    )
    path = tmp_path / "night.yaml"
    path.write_text(NIGHT + flood)
    return path


@pytest.fixture
def demo_emulator(start_emulator: StartEmulator) -> EmulatorProcess:
    # no --config, no --accept-any: the demo topology
    return start_emulator("--identity-header", IDENTITY_HEADER)


def test_the_emulator_without_flags_serves_the_demo_topology_and_says_so_first(
    demo_emulator: EmulatorProcess,
) -> None:
    first = demo_emulator.log().splitlines()[0]
    assert first.startswith("batchrun emulator: no --config: serving the demo topology, ")
    assert "3 factories (sales-eu, sales-us, finance-core)" in first
    result = batchrun(demo_emulator, "validate", "--online", str(ROOT / "configs/demo.yaml"))
    assert result.code == 0, result.stderr
    assert "15 pipelines in 3 factories" in result.stdout
    assert "ADF agrees with the manifest" in result.stdout


def test_validate_online_finds_each_problem_at_its_manifest_line(
    tmp_path: Path, demo_emulator: EmulatorProcess
) -> None:
    path = night(tmp_path)
    result = batchrun(demo_emulator, "validate", "--online", str(path))
    assert result.code == 1, result.stderr
    findings = [line for line in result.stdout.splitlines() if line.startswith(str(path))]
    assert findings == [
        f"{path}:8:5: pipeline LoadRefunds does not exist in factory sales-eu: ADF said 404 "
        "PipelineNotFound: Pipeline 'LoadRefunds' was not found in factory 'sales-eu'.",
        f"{path}:9:5: parameter 'regoin' is not declared by pipeline LoadInvoices (it declares: "
        "partition, region, run_date); did you mean 'region'?",
        f"{path}:10:5: pipeline BuildMarts declares 'partition' without a default value, and "
        "this entry does not send it",
        f"{path}:{FLOOD_FROM + 104}:5: pipeline ExportReports has concurrency 4: ADF runs 4 at "
        "once and queues at most 100 more, and this manifest sends it 105 runs; from this entry "
        "on, 1 would be refused ('Pipeline execution throttled') until earlier runs end: split "
        "the night, or raise the pipeline's concurrency",
    ]
    assert result.stdout.rstrip().endswith("4 findings")
    # one read per distinct pipeline, not per run
    assert "5 pipelines in 3 factories and 0 reference runs checked in 5 reads" in result.stdout
    assert sum(demo_emulator.stats()["requests"]["getPipeline"].values()) == 5


def test_validate_online_json_lists_findings_for_ci(
    tmp_path: Path, demo_emulator: EmulatorProcess
) -> None:
    result = batchrun(
        demo_emulator, "validate", "--online", "--format", "json", str(night(tmp_path))
    )
    assert result.code == 1
    document = json.loads(result.stdout)
    assert document["valid"] is True
    assert document["runs"] == 109
    assert document["online"]["clean"] is False
    assert [f["line"] for f in document["online"]["findings"]] == [8, 9, 10, 115]


def test_validate_online_with_a_token_arm_rejects_is_exit_3(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    arm = start_emulator("--identity-header", IDENTITY_HEADER, "--expect-token", CANARY)
    other_identity = start_emulator("--identity-header", IDENTITY_HEADER)
    result = batchrun(
        arm, "validate", "--online", str(ROOT / "configs/demo.yaml"), identity=other_identity
    )
    assert result.code == 3
    assert "ARM rejected the token" in result.stderr
    assert set(arm.stats()["requests"]["getPipeline"]) == {"401"}


def test_validate_online_without_a_token_is_exit_3_and_reads_nothing(
    start_emulator: StartEmulator,
) -> None:
    emulator = start_emulator("--identity-header", "a-different-secret")
    result = batchrun(emulator, "validate", "--online", str(ROOT / "configs/demo.yaml"))
    assert result.code == 3
    assert "authentication failed; nothing was sent" in result.stderr
    assert "getPipeline" not in emulator.stats()["requests"]


def test_a_report_in_a_missing_directory_is_a_usage_error_before_any_token(
    tmp_path: Path, demo_emulator: EmulatorProcess
) -> None:
    report = tmp_path / "nowhere" / "report.jsonl"
    result = batchrun(
        demo_emulator, "run", str(ROOT / "configs/demo.yaml"), "--report", str(report)
    )
    assert result.code == 2
    assert f"the directory {report.parent} does not exist" in result.stderr
    assert "msiToken" not in demo_emulator.stats()["requests"]


def test_the_demo_prints_the_command_it_ran_with_its_environment(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "batchrun.demo", "--reports", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("$ ")]
    words = shlex.split(line[2:])
    assignments = dict(word.split("=", 1) for word in words[:4])
    assert set(assignments) == {
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "BATCHRUN_ENDPOINT",
        "RUN_DATE",
    }
    assert assignments["IDENTITY_ENDPOINT"] == assignments["BATCHRUN_ENDPOINT"] + "/msi/token"
    assert words[4] == "batchrun"
    args = build_parser().parse_args(words[5:])
    assert (args.command, args.reconcile_window, args.log_level) == ("run", 3.0, "warning")
    assert args.report.exists()
    assert 'eval "$(batchrun emulator --background)"' in done.stdout
