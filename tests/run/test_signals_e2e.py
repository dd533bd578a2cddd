"""Signals, end to end: two signals with requests stalled end cleanly (only JSON log lines, the
first signal's exit code); SIGHUP drains like SIGTERM."""

from __future__ import annotations

import json
import signal
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from batchrun.report.reader import read_records
from tests.helpers.child import start_child
from tests.helpers.cli import StartEmulator, manifest_text, run_cli, start

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [(signal.SIGTERM, signal.SIGINT, 143), (signal.SIGINT, signal.SIGINT, 130)],
)
def test_two_signals_with_requests_stalled_leave_only_json_lines_on_stderr(
    tmp_path: Path,
    start_emulator: StartEmulator,
    first: signal.Signals,
    second: signal.Signals,
    code: int,
) -> None:
    # half the answers stall: the pacer, hearing from the other half, lets runs through until
    # every request slot holds a stalled request and more runs wait for a slot
    emulator = start(
        start_emulator, "--accept-any", "--quiet", "--write-burst", "5000", "--seed", "3",
        "--stall-after-create", "0.5", "--stall-ms", "60000",
    )  # fmt: skip
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text(200))
    report, journal = tmp_path / "report.jsonl", tmp_path / "report.jsonl.journal"
    args = ("--report", str(report), "--concurrency", "4", "--read-timeout", "120")

    def waiting_for_a_slot() -> bool:
        # every slot holds a stalled request, and answers came (the pacer lets more through)
        if not journal.exists():
            return False
        lines = report.read_text().count("\n") if report.exists() else 0
        return lines >= 4 and emulator.stats()["in_flight"] >= 4

    with start_child(emulator, manifest, *args) as child:
        # with this seed the first answers stall for the whole --stall-ms (60 s) before any
        # line is written: the wait must outlast that stall
        child.wait_until(
            waiting_for_a_slot, "every request slot holding a stalled request", timeout=120
        )
        child.signal(first)
        stopping = child.wait_for_event("stopping")
        assert stopping["in_flight"] >= 1
        child.signal(second)
        exit_code = child.finish()
    stderr = child.stderr
    # the first signal decides the code: it is the one that stopped the batch
    assert exit_code == code, stderr[-3000:]
    assert "Task exception was never retrieved" not in stderr
    assert "Session is closed" not in stderr
    events = [json.loads(line) for line in stderr.splitlines()]
    assert [e["event"] for e in events if e["event"].startswith("stopping")] == [
        "stopping",
        "stopping now",
    ]
    # nothing was sent after the second signal: the runs created are those written, and those
    # whose answers were still stalled on the wire
    written = len(list(read_records(report)))
    assert written < emulator.stats()["runs_created"] <= written + 4


def test_sighup_drains_like_sigterm_and_exits_129(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(
        start_emulator, "--accept-any", "--latency-ms", "40", "--quiet", "--write-burst", "5000"
    )
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text(300))
    report = tmp_path / "report.jsonl"
    with start_child(emulator, manifest, "--report", str(report), "--concurrency", "4") as child:
        child.wait_for_event("run.finished")
        child.signal(signal.SIGHUP)
        stopping = child.wait_for_event("stopping")
        exit_code = child.finish()
    stdout, stderr = child.stdout, child.stderr
    assert stopping["signal"] == "SIGHUP"
    assert exit_code == 129, stderr[-3000:]
    assert "interrupted by SIGHUP" in stdout
    lines = list(read_records(report))
    assert 1 <= len(lines) < 300
    # what was in flight finished and was written
    assert emulator.stats()["runs_created"] == len(lines)

    resumed = run_cli(tmp_path, emulator, manifest_text(300), "--resume")
    assert resumed.code == 0, resumed.stderr[-2000:]
    succeeded = Counter(r["id"] for r in read_records(report) if r["status"] == "succeeded")
    assert len(succeeded) == 300 and set(succeeded.values()) == {1}
    stats = emulator.stats()
    assert stats["runs_created"] == 300
    assert stats["duplicates"] == 0
