"""One process per report: the batch lock, in-process and between two real CLI processes."""

from __future__ import annotations

import json
import os
import signal
import socket
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from batchrun.errors import ReportError
from batchrun.report.reader import read_records
from batchrun.run.lock import BatchLock, lock_path
from tests.helpers.child import start_child
from tests.helpers.cli import StartEmulator, manifest_text, run_cli, start_stalling

if TYPE_CHECKING:
    from pathlib import Path


def test_the_holder_writes_its_pid_and_host_and_removes_the_file_when_done(
    tmp_path: Path,
) -> None:
    report = tmp_path / "report.jsonl"
    with BatchLock.acquire(report):
        holder = json.loads(lock_path(report).read_text())
        assert holder["pid"] == os.getpid()
        assert holder["host"] == socket.gethostname()
    assert not lock_path(report).exists()


def test_a_second_holder_is_refused_with_the_first_ones_pid_and_host(tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    # flock locks belong to the open file: a second open in this process is refused too
    with BatchLock.acquire(report), pytest.raises(ReportError) as refused:
        BatchLock.acquire(report)
    message = str(refused.value)
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in message
    assert str(report) in message and "--resume" in message
    with BatchLock.acquire(report):
        pass


def test_a_lock_file_left_by_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    lock_path(report).write_text('{"pid": 999999, "host": "gone"}\n')
    with BatchLock.acquire(report):
        assert json.loads(lock_path(report).read_text())["pid"] == os.getpid()


@pytest.mark.e2e
def test_a_second_process_on_the_same_report_exits_2_naming_the_first(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    # every answer stalls: the first process holds the lock until it is stopped
    emulator = start_stalling(start_emulator)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text(6))
    report = tmp_path / "report.jsonl"
    journal = tmp_path / "report.jsonl.journal"
    common = ("--report", str(report), "--reconcile-window", "1")
    with start_child(
        emulator, manifest, *common, "--concurrency", "2", "--read-timeout", "120"
    ) as first:
        first.wait_for_intents(journal, 2)
        # the retried Job beside the first: without the lock it would send the same runs
        second = run_cli(
            tmp_path, emulator, manifest_text(6), *common, "--resume", "--read-timeout", "0.5"
        )
        assert second.code == 2, second.stderr[-2000:]
        assert f"pid {first.pid} on host {socket.gethostname()}" in second.stderr
        assert emulator.stats()["runs_created"] == 2
        first.signal(signal.SIGTERM)
        first.wait_for_event("stopping")
        first.signal(signal.SIGINT)
        code = first.finish()
    stderr = first.stderr
    assert code == 143, stderr[-2000:]

    # answers still stall: every run is found in ADF (two from the journal), none sent twice
    last = run_cli(
        tmp_path, emulator, manifest_text(6), *common, "--resume", "--read-timeout", "0.5"
    )
    assert last.code == 0, last.stderr[-2000:]
    succeeded = Counter(r["id"] for r in read_records(report) if r["status"] == "succeeded")
    assert len(succeeded) == 6 and set(succeeded.values()) == {1}
    stats = emulator.stats()
    assert stats["runs_created"] == 6
    assert stats["duplicates"] == 0
