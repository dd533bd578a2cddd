"""Signals, end to end: each exit code exactly, and ``--grace`` as a bound, never a race.

The signal is sent only once the child has shown, on its stderr, that its handlers are installed
and requests are on the wire: a ``run.finished`` line comes from the scheduler, which starts
after the handlers are installed, while the other slots are still waiting for their answers.
"""

from __future__ import annotations

import json
import signal
from typing import TYPE_CHECKING

import pytest

from tests.helpers.child import start_child
from tests.helpers.cli import StartEmulator, manifest_text, start, start_stalling

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e

RUNS = 400


def report_lines(report: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in report.read_text().splitlines()]


def test_sigint_drains_the_requests_in_flight_and_exits_130(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(
        start_emulator, "--accept-any", "--latency-ms", "100", "--quiet", "--write-burst", "5000"
    )
    manifest, report = tmp_path / "manifest.yaml", tmp_path / "report.jsonl"
    manifest.write_text(manifest_text(RUNS))
    with start_child(emulator, manifest, "--report", str(report), "--concurrency", "8") as child:
        child.wait_for_event("run.finished")
        child.signal(signal.SIGINT)
        assert child.finish(why=" after SIGINT") == 130, child.stderr[-2000:]
    events = child.events()
    assert [e["signal"] for e in events if e["event"].startswith("stopping")] == ["SIGINT"]
    assert "interrupted by SIGINT" in child.stdout
    lines = report_lines(report)
    assert 1 <= len(lines) < RUNS
    assert {line["status"] for line in lines} == {"succeeded"}
    # drained: every run the emulator created has its line; none was cut off mid-request
    assert emulator.stats()["runs_created"] == len(lines)


def test_grace_is_how_long_requests_in_flight_may_take_after_a_signal(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    # every answer stalls for a minute; the read timeout would wait two
    emulator = start_stalling(start_emulator)
    manifest, report = tmp_path / "manifest.yaml", tmp_path / "report.jsonl"
    manifest.write_text(manifest_text(20))
    journal = tmp_path / "report.jsonl.journal"
    args = ("--concurrency", "4", "--read-timeout", "120", "--grace", "1")
    with start_child(emulator, manifest, "--report", str(report), *args) as child:
        child.wait_for_intents(journal, 4)
        child.signal(signal.SIGTERM)
        assert child.wait_for_event("stopping")["grace_s"] == 1.0
        # --grace 1: the stalled requests are cancelled a second after the signal, not when
        # their answers (60 s) or the read timeout (120 s) come
        code = child.finish(timeout=30, why=" after SIGTERM with --grace 1")
        assert code == 143, child.stderr[-2000:]
    assert not report.exists() or report.read_text() == ""
    assert emulator.stats()["runs_created"] == 4
