"""``run --wait``, ``watch`` and ``cancel`` end to end: the real CLI against an emulator process
whose runs last about a second (a slow pipeline: a minute), with ``--poll 0.2``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from tests.helpers.cli import (
    CLI_TIMEOUT_S,
    FAST,
    SUB_A,
    StartEmulator,
    cli_env,
    last_lines,
    run_cli,
    start_configured,
)

if TYPE_CHECKING:
    from pathlib import Path

    from batchrun.emulator.process import EmulatorProcess

pytestmark = pytest.mark.e2e

CONFIG = f"""
settings: {{run_queued_ms: 200, run_duration_ms: 800, cancel_ms: 300, seed: 1}}
x-pipelines: &pipelines
  LoadOrders: {{}}
  Flaky:
    failure_rate: 1.0
    activities: [{{name: GetWatermark, type: Lookup}}, {{name: CopyOrders, type: Copy}}]
    failure: {{activity: CopyOrders, code: "2200", failure_type: UserError,
              message: "ErrorCode=UserErrorSourceBlobNotExist, the blob is missing"}}
  Slow: {{duration_ms: 60000}}
subscriptions:
  {SUB_A}:
    resource_groups:
      rg-data:
        factories:
          factory-0: {{pipelines: *pipelines}}
          factory-1: {{pipelines: *pipelines}}
"""


def manifest(**counts: int) -> str:
    """``pipeline=count`` runs, spread over two factories; ids are ``<pipeline>-<n>``."""
    runs: list[str] = []
    runs.extend(
        f"  - {{id: {pipeline}-{n}, factory: factory-{n % 2}, pipeline: {pipeline}, "
        f"parameters: {{partition: {n}}}}}\n"
        for pipeline, count in counts.items()
        for n in range(count)
    )
    head = f"version: 1\ndefaults: {{subscription: {SUB_A}, resource_group: rg-data}}\nruns:\n"
    return head + "".join(runs)


@pytest.fixture
def emulator(start_emulator: StartEmulator, tmp_path: Path) -> EmulatorProcess:
    return start_configured(start_emulator, tmp_path, CONFIG, "--quiet")


def batchrun(
    emulator: EmulatorProcess, *args: str, stdin: int | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchrun", *args],
        env=cli_env(emulator), capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
        check=False, stdin=stdin,
    )  # fmt: skip


def test_a_mixed_batch_waits_for_every_outcome(tmp_path: Path, emulator: EmulatorProcess) -> None:
    done = run_cli(tmp_path, emulator, manifest(LoadOrders=4, Flaky=2), "--wait", *FAST)
    assert done.code == 1, done.stderr
    lines = done.lines()
    assert len(lines) == 12  # a trigger line and an outcome line per run, appended
    last = last_lines(done.report)
    assert {i: r["outcome"] for i, r in last.items()} == {
        **{f"LoadOrders-{n}": "Succeeded" for n in range(4)},
        "Flaky-0": "Failed",
        "Flaky-1": "Failed",
    }
    for record in last.values():
        assert record["status"] == "succeeded"  # the trigger's: --resume never re-triggers
        assert record["monitor_url"] == (
            f"https://adf.azure.com/en/monitoring/pipelineruns/{record['run_id']}"
            f"?factory=/subscriptions/{SUB_A}/resourceGroups/rg-data"
            f"/providers/Microsoft.DataFactory/factories/{record['factory']}"
        )
        assert record["run_duration_ms"] >= 800 and record["queued_ms"] >= 0
        assert record["run_start"] <= record["run_end"]
    # the failure: the first failed activity's error, from queryActivityruns
    assert last["Flaky-0"]["failure"] == {
        "activity": "CopyOrders",
        "activity_type": "Copy",
        "code": "2200",
        "message": "ErrorCode=UserErrorSourceBlobNotExist, the blob is missing",
        "failure_type": "UserError",
    }
    assert "failure" not in last["LoadOrders-0"]
    assert "Failures by activity error code" in done.stdout
    assert "2200" in done.stdout and "CopyOrders" in done.stdout
    assert "p50" in done.stdout
    requests = emulator.stats()["requests"]
    assert requests["queryActivityruns"] == {"200": 2}  # only for the failed runs
    assert "getPipelineRun" not in requests  # never a GET per run

    # resuming the finished report re-triggers nothing, and summary says the night failed
    again = run_cli(tmp_path, emulator, manifest(LoadOrders=4, Flaky=2), "--resume", *FAST)
    assert again.code == 0, again.stderr
    assert emulator.stats()["runs_created"] == 6
    summary = batchrun(emulator, "summary", str(done.report), "--format", "json")
    assert summary.returncode == 1
    followed = json.loads(summary.stdout)["followed"]
    assert followed["outcomes"]["Failed"] == 2
    assert followed["failures"][0]["code"] == "2200"


def test_every_run_succeeding_exits_0(tmp_path: Path, emulator: EmulatorProcess) -> None:
    done = run_cli(tmp_path, emulator, manifest(LoadOrders=3), "--wait", *FAST)
    assert done.code == 0, done.stderr
    assert {r["outcome"] for r in last_lines(done.report).values()} == {"Succeeded"}
    # the night's summary and the report's path once, when the runs have ended
    assert done.stdout.count(f"report: {done.report}") == 1
    assert done.stdout.count("followed 3 runs: 3 Succeeded") == 1


@pytest.mark.parametrize("on_timeout", ["report", "cancel"])
def test_a_timeout_gives_timed_out(
    tmp_path: Path, emulator: EmulatorProcess, on_timeout: str
) -> None:
    args = ("--wait", "--timeout", "2s", "--on-timeout", on_timeout, *FAST)
    done = run_cli(tmp_path, emulator, manifest(LoadOrders=1, Slow=2), *args)
    assert done.code == 1, done.stderr
    last = last_lines(done.report)
    assert last["LoadOrders-0"]["outcome"] == "Succeeded"
    slow = [last["Slow-0"], last["Slow-1"]]
    assert {r["outcome"] for r in slow} == {"TimedOut"}
    cancels = emulator.stats()["cancels"]
    if on_timeout == "cancel":
        assert {r["run_status"] for r in slow} == {"Cancelled"}
        assert cancels["recursive"] == 2
    else:
        assert {r["run_status"] for r in slow} == {"InProgress"}
        assert {r["run_end"] for r in slow} == {None}
        assert cancels == {"recursive": 0, "not_recursive": 0}


def test_sigterm_while_waiting_exits_143_and_watch_picks_it_up(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text(manifest(LoadOrders=2, Slow=2))
    report = tmp_path / "report.jsonl"
    command = [sys.executable, "-m", "batchrun", "run", str(path), "--report", str(report)]
    process = subprocess.Popen(
        [*command, "--wait", *FAST, "--log-format", "json"],
        env=cli_env(emulator),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # waiting: the quick runs have their outcome lines, the slow ones not yet
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = report.read_text().splitlines() if report.exists() else []
            if sum('"outcome"' in line for line in lines) >= 2:
                break
            time.sleep(0.1)  # polling a file another process writes: no clock to inject
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 143, stderr
    assert "batchrun watch" in stdout
    last = last_lines(report)
    assert "outcome" not in last["Slow-0"] and "outcome" not in last["Slow-1"]

    # a second, killed --wait changes nothing; watch then follows only the runs not ended
    watched = batchrun(emulator, "watch", str(report), "--timeout", "1s", *FAST)
    assert watched.returncode == 1, watched.stderr
    last = last_lines(report)
    assert {i: r["outcome"] for i, r in last.items()} == {
        "LoadOrders-0": "Succeeded",
        "LoadOrders-1": "Succeeded",
        "Slow-0": "TimedOut",
        "Slow-1": "TimedOut",
    }
    assert len(report.read_text().splitlines()) == 8
    assert emulator.stats()["runs_created"] == 4


def test_cancel_a_report_dry_run_refusal_and_recursive(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    done = run_cli(tmp_path, emulator, manifest(Slow=3))
    assert done.code == 0, done.stderr
    report = str(done.report)

    dry = batchrun(emulator, "cancel", report, "--dry-run", "--log-level", "warning")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("3 runs to cancel:")
    assert "dry run: nothing was cancelled" in dry.stdout

    refused = batchrun(emulator, "cancel", report, "--log-level", "warning")
    assert refused.returncode == 2
    assert "pass --yes" in refused.stderr
    assert emulator.stats()["cancels"] == {"recursive": 0, "not_recursive": 0}

    done_cancel = batchrun(
        emulator, "cancel", report, "--yes", "--recursive", "--log-level", "warning"
    )
    assert done_cancel.returncode == 0, done_cancel.stderr
    assert "cancel requested for 3 runs (recursively)" in done_cancel.stdout
    assert emulator.stats()["cancels"] == {"recursive": 3, "not_recursive": 0}

    watched = batchrun(emulator, "watch", report, *FAST)
    assert watched.returncode == 1
    assert {r["outcome"] for r in last_lines(done.report).values()} == {"Cancelled"}

    nothing = batchrun(emulator, "cancel", report, "--yes", "--log-level", "warning")
    assert nothing.returncode == 0
    assert nothing.stdout.startswith("0 runs to cancel")


def test_cancel_by_scope_and_pipeline(tmp_path: Path, emulator: EmulatorProcess) -> None:
    done = run_cli(tmp_path, emulator, manifest(Slow=2, LoadOrders=2))
    assert done.code == 0, done.stderr
    scope = tmp_path / "scope.yaml"
    scope.write_text(
        f"version: 1\ndefaults: {{subscription: {SUB_A}, resource_group: rg-data}}\n"
        "factories:\n  - factory: [factory-0, factory-1]\n"
    )
    since = "2000-01-01T00:00:00Z"
    args = ("cancel", "--scope", str(scope), "--since", since, "--pipeline", "sl*", "--yes")
    cancelled = batchrun(emulator, *args, "--log-level", "warning")
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith("2 runs to cancel:")
    assert "LoadOrders" not in cancelled.stdout
    assert emulator.stats()["cancels"] == {"recursive": 0, "not_recursive": 2}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--timeout", "0"), "greater than 0"),
        (("--timeout", "2d"), "not a duration"),
        (("--timeout", "nan"), "not a duration"),
        (("--on-timeout", "kill"), "invalid choice"),
    ],
)
def test_bad_follow_options_are_usage_errors(
    tmp_path: Path, emulator: EmulatorProcess, args: tuple[str, ...], message: str
) -> None:
    report = tmp_path / "r.jsonl"
    report.write_text("")
    done = batchrun(emulator, "watch", str(report), *args)
    assert done.returncode == 2
    assert message in done.stderr


def test_cancel_needs_a_report_or_a_scope(tmp_path: Path, emulator: EmulatorProcess) -> None:
    done = batchrun(emulator, "cancel")
    assert done.returncode == 2
    assert "give a REPORT, or --scope" in done.stderr
