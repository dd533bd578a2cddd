"""The real `batchrun` CLI, as a subprocess, against the emulator on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.helpers.cli import (
    CANARY,
    CLI_TIMEOUT_S,
    SUB_A,
    SUB_B,
    StartEmulator,
    create_answers,
    manifest_text,
    one_factory,
    run_cli,
    start,
    start_configured,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e

TOPOLOGY = one_factory("LoadOrders: {parameters: [partition]}")


def test_every_run_succeeds_with_one_line_each(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(start_emulator, "--accept-any", "--latency-ms", "5")
    result = run_cli(tmp_path, emulator, manifest_text(60, subscriptions=(SUB_A, SUB_B)))
    assert result.code == 0, result.stderr
    lines = result.lines()
    assert len(lines) == 60
    assert {line["status"] for line in lines} == {"succeeded"}
    assert len({line["run_id"] for line in lines}) == 60
    assert all(line["correlation_id"] and line["request_id"] for line in lines)
    stats = emulator.stats()
    assert stats["runs_created"] == 60
    assert stats["duplicates"] == 0
    assert "60 succeeded" in result.stdout
    assert str(result.report) in result.stdout


def test_throttled_runs_all_succeed_with_few_429s(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(
        start_emulator, "--accept-any", "--write-burst", "10", "--write-refill", "40",
        "--latency-ms", "5",
    )  # fmt: skip
    result = run_cli(tmp_path, emulator, manifest_text(120), "--concurrency", "8")
    assert result.code == 0, result.stderr
    assert len(result.lines()) == 120
    answers = create_answers(emulator)
    assert answers.get("200") == 120
    # pacing reads the remaining-writes header: at most 1% of the requests are 429s (README)
    assert answers.get("429", 0) <= 0.01 * sum(answers.values()), answers


def test_transient_5xx_are_retried_until_every_run_succeeds(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(
        start_emulator, "--accept-any", "--fail-500", "0.15", "--fail-503", "0.15",
        "--fail-502-html", "0.1", "--seed", "3",
    )  # fmt: skip
    result = run_cli(tmp_path, emulator, manifest_text(80), "--reconcile-window", "1")
    assert result.code == 0, result.stderr
    lines = result.lines()
    assert {line["status"] for line in lines} == {"succeeded"}
    answers = create_answers(emulator)
    assert answers.get("500", 0) > 0
    assert answers.get("503", 0) > 0
    assert answers.get("502", 0) > 0
    assert sum(line["attempts"] for line in lines) == sum(answers.values())
    assert emulator.stats()["runs_created"] == 80


def test_gateway_html_error_is_reported_clearly_when_retries_run_out(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(start_emulator, "--accept-any", "--fail-502-html", "1.0")
    result = run_cli(
        tmp_path, emulator, manifest_text(2), "--max-attempts", "2", "--reconcile-window", "0.5"
    )
    assert result.code == 1
    for line in result.lines():
        assert line["status"] == "failed"
        assert line["attempts"] == 2
        assert line["http_status"] == 502
        assert "502" in line["error"]["code"] or "502" in line["error"]["message"]
    assert "Traceback" not in result.stderr


def test_not_found_and_bad_request_fail_fast_with_the_cloud_error(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start_configured(start_emulator, tmp_path, TOPOLOGY)
    manifest = f"""version: 1
defaults: {{subscription: {SUB_A}, resource_group: rg-data}}
runs:
  - {{id: good, factory: factory-0, pipeline: LoadOrders, parameters: {{partition: 1}}}}
  - {{id: missing-pipeline, factory: factory-0, pipeline: NoSuchPipeline}}
  - {{id: undeclared, factory: factory-0, pipeline: LoadOrders, parameters: {{nope: 1}}}}
"""
    result = run_cli(tmp_path, emulator, manifest)
    assert result.code == 1
    by_id = {line["id"]: line for line in result.lines()}
    assert by_id["good"]["status"] == "succeeded"
    missing = by_id["missing-pipeline"]
    assert (missing["status"], missing["http_status"], missing["attempts"]) == ("failed", 404, 1)
    assert missing["error"]["code"] == "PipelineNotFound"
    assert "NoSuchPipeline" in missing["error"]["message"]
    undeclared = by_id["undeclared"]
    assert (undeclared["http_status"], undeclared["attempts"]) == (400, 1)
    assert undeclared["error"]["code"] == "BadRequest"
    assert "nope" in undeclared["error"]["message"]
    assert create_answers(emulator) == {"200": 1, "404": 1, "400": 1}


def test_a_token_arm_rejects_stops_the_batch_with_exit_3(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    arm = start(start_emulator, "--accept-any", "--expect-token", CANARY, "--latency-ms", "5")
    other_identity = start(start_emulator, "--accept-any")
    result = run_cli(
        tmp_path, arm, manifest_text(300), "--concurrency", "4", identity=other_identity
    )
    assert result.code == 3
    answers = create_answers(arm)
    assert set(answers) == {"401"}
    # it stopped sending: nothing but what was already on the wire with the first 401
    assert answers["401"] <= 4
    assert len(result.lines()) == answers["401"]
    assert "InvalidAuthenticationToken" in result.stderr
    assert "--resume" in result.stderr


def test_no_token_means_exit_3_and_nothing_sent(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start_emulator("--accept-any", "--identity-header", "a-different-secret")
    result = run_cli(tmp_path, emulator, manifest_text(5))
    assert result.code == 3
    assert "authentication failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert create_answers(emulator) == {}
    assert not result.report.exists()


def test_invalid_manifest_exits_2_and_sends_nothing(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(start_emulator, "--accept-any")
    manifest = manifest_text(10) + "  - {subscription: x, factory: no_underscores, pipeline: P}\n"
    result = run_cli(tmp_path, emulator, manifest)
    assert result.code == 2
    assert "manifest.yaml:" in result.stderr
    assert "runs[10].factory" in result.stderr
    assert "Traceback" not in result.stderr
    assert create_answers(emulator) == {}
    assert not result.report.exists()


def test_an_existing_report_is_not_overwritten(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(start_emulator, "--accept-any")
    (tmp_path / "report.jsonl").write_text('{"id": "from-last-night"}\n')
    result = run_cli(tmp_path, emulator, manifest_text(3))
    assert result.code == 2
    assert "--resume" in result.stderr
    assert (tmp_path / "report.jsonl").read_text() == '{"id": "from-last-night"}\n'
    assert create_answers(emulator) == {}


def test_resume_triggers_only_what_did_not_succeed(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start_configured(start_emulator, tmp_path, TOPOLOGY)
    manifest = f"""version: 1
defaults: {{subscription: {SUB_A}, resource_group: rg-data, factory: factory-0}}
runs:
  - {{id: a, pipeline: LoadOrders, parameters: {{partition: 1}}}}
  - {{id: b, pipeline: LoadOrders, parameters: {{partition: 2}}}}
  - {{id: c, pipeline: NotYetDeployed}}
"""
    first = run_cli(tmp_path, emulator, manifest)
    assert first.code == 1
    second = run_cli(tmp_path, emulator, manifest, "--resume")
    assert second.code == 1
    lines = second.lines()
    assert [line["id"] for line in lines[:3]].count("c") == 1
    assert [line["id"] for line in lines[3:]] == ["c"]
    assert emulator.stats()["runs_created"] == 2
    assert "2 runs had already succeeded" in second.stdout


def test_dry_run_prints_each_request_and_sends_nothing(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(start_emulator, "--accept-any")
    result = run_cli(tmp_path, emulator, manifest_text(4), "--dry-run")
    assert result.code == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == 4
    assert all(row[1] == "POST" for row in rows)
    assert rows[0][2].startswith(f"{emulator.url}/subscriptions/{SUB_A}/resourceGroups/rg-data/")
    assert rows[0][2].endswith("/pipelines/LoadOrders/createRun?api-version=2018-06-01")
    assert json.loads(rows[0][3]) == {"partition": 0}
    assert create_answers(emulator) == {}
    assert not result.report.exists()


@pytest.mark.parametrize("endpoint", ["http://example.com", "ftp://127.0.0.1"])
def test_plain_http_is_refused_except_on_loopback(tmp_path: Path, endpoint: str) -> None:
    manifest_path = tmp_path / "manifest.yaml"
    manifest_path.write_text(manifest_text(1))
    done = subprocess.run(
        [sys.executable, "-m", "batchrun", "run", str(manifest_path), "--endpoint", endpoint,
         "--dry-run"],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("fmt", ["table", "markdown", "json"])
def test_summary_command_reads_a_report_and_exits_1_on_failures(
    tmp_path: Path, start_emulator: StartEmulator, fmt: str
) -> None:
    emulator = start_configured(start_emulator, tmp_path, TOPOLOGY)
    manifest = f"""version: 1
defaults: {{subscription: {SUB_A}, resource_group: rg-data, factory: factory-0}}
runs:
  - {{id: ok, pipeline: LoadOrders, parameters: {{partition: 1}}}}
  - {{id: missing, pipeline: NotDeployed}}
"""
    result = run_cli(tmp_path, emulator, manifest)
    assert result.code == 1
    done = subprocess.run(
        [sys.executable, "-m", "batchrun", "summary", str(result.report), "--format", fmt],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "PipelineNotFound" in done.stdout
    if fmt == "json":
        assert json.loads(done.stdout)["statuses"]["failed"] == 1
    if fmt == "markdown":
        assert "| status | runs |\n|---|---:|" in done.stdout


def test_validate_command_prints_runs_per_factory(tmp_path: Path) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text(manifest_text(6, subscriptions=(SUB_A, SUB_B)))
    done = subprocess.run(
        [sys.executable, "-m", "batchrun", "validate", str(path)],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "6 runs" in done.stdout
    assert SUB_B in done.stdout
