"""Exactly once, end to end: lost responses, crashes and signals never make a duplicate run."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from batchrun.emulator.process import EmulatorProcess
from tests.helpers.child import start_child, wait_until
from tests.helpers.cli import (
    CLI_TIMEOUT_S,
    SUB_A,
    SUB_B,
    StartEmulator,
    cli_env,
    manifest_text,
    run_cli,
    start,
    start_stalling,
)

if TYPE_CHECKING:
    from pathlib import Path

    from batchrun.emulator.process import EmulatorProcess

pytestmark = pytest.mark.e2e


def report_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_one_succeeded_line_per_run(lines: list[dict[str, Any]], count: int) -> None:
    succeeded = Counter(line["id"] for line in lines if line["status"] == "succeeded")
    assert len(succeeded) == count
    assert set(succeeded.values()) == {1}
    run_ids = [line["run_id"] for line in lines if line["status"] == "succeeded"]
    assert len(set(run_ids)) == count


def test_lost_responses_make_no_duplicates(tmp_path: Path, start_emulator: StartEmulator) -> None:
    emulator = start(
        start_emulator, "--accept-any", "--seed", "11", "--write-burst", "5000",
        "--drop-after-create", "0.03", "--fail-500-after-create", "0.05", "--fail-503", "0.05",
        "--stall-after-create", "0.01", "--stall-ms", "2500",
    )  # fmt: skip
    result = run_cli(
        tmp_path, emulator, manifest_text(1000, subscriptions=(SUB_A, SUB_B)),
        "--concurrency", "32", "--read-timeout", "1", "--reconcile-window", "2",
    )  # fmt: skip
    assert result.code == 0, result.stderr[-2000:]
    lines = result.lines()
    assert len(lines) == 1000
    assert_one_succeeded_line_per_run(lines, 1000)
    stats = emulator.stats()
    assert stats["duplicates"] == 0
    assert stats["runs_created"] == 1000
    answers = stats["requests"]["createRun"]
    assert answers.get("dropped", 0) > 0
    assert answers.get("500", 0) > 0
    # every run whose answer was lost but which was created is reported as found, not re-posted
    assert sum(1 for line in lines if line.get("reconciled")) > 0


def test_a_run_that_shows_up_late_in_queries_is_still_not_duplicated(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(
        start_emulator, "--accept-any", "--seed", "4", "--drop-after-create", "0.3",
        "--visibility-delay-ms", "1500",
    )  # fmt: skip
    result = run_cli(tmp_path, emulator, manifest_text(40), "--reconcile-window", "6")
    assert result.code == 0, result.stderr[-2000:]
    assert_one_succeeded_line_per_run(result.lines(), 40)
    stats = emulator.stats()
    assert stats["duplicates"] == 0
    assert stats["runs_created"] == 40
    assert sum(1 for line in result.lines() if line.get("reconciled")) > 0


def test_two_identical_entries_make_exactly_two_runs_even_with_drops(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(start_emulator, "--accept-any", "--seed", "8", "--drop-after-create", "0.5")
    entry = f"  - {{subscription: {SUB_A}, factory: twins, pipeline: P, parameters: {{day: 1}}}}\n"
    manifest = "version: 1\ndefaults: {resource_group: rg-data}\nruns:\n" + entry * 6
    result = run_cli(tmp_path, emulator, manifest, "--reconcile-window", "1")
    assert result.code == 0, result.stderr[-2000:]
    assert_one_succeeded_line_per_run(result.lines(), 6)
    stats = emulator.stats()
    assert stats["runs_created"] == 6


def _start_cli(tmp_path: Path, emulator: EmulatorProcess, *args: str) -> subprocess.Popen[str]:
    env = cli_env(emulator)
    command = [sys.executable, "-m", "batchrun", "run", str(tmp_path / "manifest.yaml")]
    command += ["--report", str(tmp_path / "report.jsonl"), "--log-format", "json", *args]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_lines(report: Path, count: int, process: subprocess.Popen[str]) -> bool:
    """Until the report has ``count`` lines (True) or the process ended first (False); fails
    the test if neither happens in time."""
    return wait_until(
        lambda: report.exists() and report.read_text().count("\n") >= count,
        f"{count} lines in {report.name}",
        process=process,
    )


def test_kill_9_then_resume_until_done_creates_each_run_once(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    # One answer in twenty stalls past --read-timeout (seeded): a round has hundreds of runs
    # left, so it cannot end before a stalled answer times out, seconds after the kill comes.
    # Every kill below lands on a running batch, however fast or slow the machine.
    emulator = start(
        start_emulator, "--accept-any", "--latency-ms", "15", "--quiet", "--write-burst", "5000",
        "--seed", "2026", "--stall-after-create", "0.05", "--stall-ms", "60000",
    )  # fmt: skip
    (tmp_path / "manifest.yaml").write_text(manifest_text(500, subscriptions=(SUB_A, SUB_B)))
    report = tmp_path / "report.jsonl"
    chance = random.Random(2026)
    extra = ("--reconcile-window", "1", "--concurrency", "16", "--read-timeout", "5")
    for round_number in range(2):
        resume = ("--resume",) if round_number else ()
        process = _start_cli(tmp_path, emulator, *resume, *extra)
        already = report.read_text().count("\n") if report.exists() else 0
        _wait_for_lines(report, already + chance.randint(20, 120), process)
        assert process.poll() is None, f"round {round_number} ended before its kill -9"
        process.kill()
        process.communicate(timeout=CLI_TIMEOUT_S)
    process = _start_cli(tmp_path, emulator, "--resume", *extra)
    _, stderr = process.communicate(timeout=CLI_TIMEOUT_S)
    assert process.returncode == 0, stderr[-2000:]
    assert_one_succeeded_line_per_run(report_lines(report), 500)
    stats = emulator.stats()
    assert stats["runs_created"] == 500
    assert stats["duplicates"] == 0
    # stalled answers (and the runs in flight at each kill) were found in ADF, not posted again
    assert any(line.get("reconciled") for line in report_lines(report))


def test_sigterm_drains_then_resume_finishes_without_duplicates(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(
        start_emulator, "--accept-any", "--latency-ms", "40", "--quiet", "--write-burst", "5000"
    )
    (tmp_path / "manifest.yaml").write_text(manifest_text(400))
    report = tmp_path / "report.jsonl"
    process = _start_cli(tmp_path, emulator, "--concurrency", "8")
    assert _wait_for_lines(report, 50, process), "the batch ended before its SIGTERM"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=CLI_TIMEOUT_S)
    assert process.returncode == 143, stderr[-2000:]
    text = report.read_text()
    assert text.endswith("\n")
    first = report_lines(report)
    assert 50 <= len(first) < 400
    # what was in flight finished and was written: nothing is left unaccounted in the emulator
    assert emulator.stats()["runs_created"] == len(first)

    resumed = _start_cli(tmp_path, emulator, "--resume")
    _, stderr = resumed.communicate(timeout=CLI_TIMEOUT_S)
    assert resumed.returncode == 0, stderr[-2000:]
    assert_one_succeeded_line_per_run(report_lines(report), 400)
    stats = emulator.stats()
    assert stats["runs_created"] == 400
    assert stats["duplicates"] == 0


def test_resume_refuses_a_report_of_another_manifest(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(start_emulator, "--accept-any")
    first = run_cli(tmp_path, emulator, manifest_text(3))
    assert first.code == 0
    second = run_cli(tmp_path, emulator, manifest_text(4), "--resume")
    assert second.code == 2
    assert "another manifest" in second.stderr
    assert emulator.stats()["runs_created"] == 3


def test_a_second_signal_stops_at_once_and_resume_finds_the_runs_in_flight(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start_stalling(start_emulator)
    (tmp_path / "manifest.yaml").write_text(manifest_text(20))
    report = tmp_path / "report.jsonl"
    journal = tmp_path / "report.jsonl.journal"
    manifest = tmp_path / "manifest.yaml"
    args = ("--report", str(report), "--concurrency", "4", "--read-timeout", "120")
    with start_child(emulator, manifest, *args) as child:
        child.wait_for_intents(journal, 4)
        child.signal(signal.SIGTERM)
        child.wait_for_event("stopping")
        child.signal(signal.SIGINT)
        child.wait_for_event("stopping now")
        # the first signal says why the batch stopped; the second only made it stop sooner
        assert child.finish(why=" after a second signal") == 143, child.stderr[-2000:]
    # the four runs were created but their answers never came: no line, an intent each
    assert not report.exists() or report.read_text() == ""
    assert emulator.stats()["runs_created"] == 4

    # every answer still stalls: each run is found by asking ADF, the first four from the journal
    resumed = _start_cli(
        tmp_path, emulator, "--resume", "--reconcile-window", "1", "--read-timeout", "0.5"
    )
    _, stderr = resumed.communicate(timeout=CLI_TIMEOUT_S)
    assert resumed.returncode == 0, stderr[-2000:]
    lines = report_lines(report)
    assert_one_succeeded_line_per_run(lines, 20)
    assert all(line["reconciled"] for line in lines)
    stats = emulator.stats()
    assert stats["runs_created"] == 20
    assert stats["duplicates"] == 0
