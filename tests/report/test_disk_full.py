"""A full disk, or a file at its size limit: the first line that cannot be written stops the
batch (no new sends, exit 2 with the path and the OS's reason), and --resume finishes it once."""

from __future__ import annotations

import os
import resource
import signal
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from batchrun.errors import WriteError
from batchrun.model import RunSpec
from batchrun.report.reader import read_records
from batchrun.report.writer import AppendOnlyJsonl, ReportWriter, RunResult
from batchrun.run.constants import TASKS_PER_SLOT
from batchrun.run.journal import BatchIdentity, Journal, JournalClosed, journal_path
from tests.helpers.child import start_child
from tests.helpers.cli import StartEmulator, manifest_text, run_cli, start

if TYPE_CHECKING:
    from collections.abc import Iterator

FULL = Path("/dev/full")  # every write fails with ENOSPC
needs_dev_full = pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full (Linux)")

SPEC = RunSpec(id="r1", subscription="s", resource_group="rg", factory="f", pipeline="p")
T0 = datetime(2026, 11, 26, 2, tzinfo=UTC)
RESULT = RunResult(
    spec=SPEC, status="succeeded", started_at=T0, finished_at=T0 + timedelta(seconds=1),
    attempts=1, run_id="run-1",
)  # fmt: skip
IDENTITY = BatchIdentity("fingerprint", "m.yaml", None)


def full_report(tmp_path: Path) -> Path:
    report = tmp_path / "report.jsonl"
    report.symlink_to(FULL)
    return report


@needs_dev_full
def test_without_a_failure_handler_the_writer_raises_with_the_path_and_reason(
    tmp_path: Path,
) -> None:
    report = full_report(tmp_path)
    with (
        ReportWriter.open(report, resume=True) as writer,
        pytest.raises(WriteError, match="No space left on device") as failed,
    ):
        writer.write(RESULT)
    assert failed.value.path == str(report)
    assert str(failed.value).startswith(f"{report}: cannot write the report: ")
    assert "ENOSPC" in failed.value.reason


@needs_dev_full
def test_the_first_failure_is_handed_over_once_and_nothing_is_written_after_it(
    tmp_path: Path,
) -> None:
    heard: list[WriteError] = []
    with ReportWriter.open(full_report(tmp_path), resume=True) as writer:
        writer.on_failure = heard.append
        writer.write(RESULT)
        writer.write(RESULT)
        writer.write(RESULT)
    assert len(heard) == 1 and writer.failure is heard[0]
    assert writer.unwritten == 3


@needs_dev_full
def test_an_intent_that_cannot_be_written_keeps_its_run_from_being_sent(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl.journal"
    heard: list[WriteError] = []
    journal = Journal(AppendOnlyJsonl(path, os.open(FULL, os.O_WRONLY), what="intent journal"))
    journal.on_failure = heard.append
    with journal:
        # a JournalClosed is a PacerClosed: the scheduler ends the run as stopped, unsent
        for _ in range(2):
            with pytest.raises(JournalClosed):
                journal.intent(spec_id="r1", client_request_id="c", at=T0)
    assert len(heard) == 1
    assert heard[0].what == "intent journal"


@needs_dev_full
def test_a_journal_whose_batch_line_cannot_be_written_is_not_left_behind(tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    journal_path(report).symlink_to(FULL)
    with pytest.raises(WriteError, match="intent journal"):
        Journal.open(report, IDENTITY, resume=True)
    assert not journal_path(report).is_symlink()


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """This process may not grow a file past ``limit`` bytes (Python ignores SIGXFSZ: EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_line_cut_short_by_the_size_limit_is_a_write_error_with_the_os_reason(
    tmp_path: Path,
) -> None:
    report = tmp_path / "report.jsonl"
    with ReportWriter.open(report, resume=False) as writer:
        writer.write(RESULT)
        whole = report.stat().st_size
        with file_size_limit(whole + 20), pytest.raises(WriteError) as failed:
            writer.write(RESULT)
    assert failed.value.reason == "File too large (EFBIG)"
    # the first line stands; the cut one is the last, and readers pass over it
    assert report.stat().st_size == whole + 20
    assert [r["run_id"] for r in read_records(report)] == ["run-1"]


def test_a_resumed_report_that_cannot_take_the_end_of_its_cut_line_is_a_write_error(
    tmp_path: Path,
) -> None:
    report = tmp_path / "report.jsonl"
    report.write_text('{"id": "r1", "sta')
    with file_size_limit(report.stat().st_size), pytest.raises(WriteError, match="EFBIG"):
        ReportWriter.open(report, resume=True)


# room for a few report lines (~450 bytes each) and more intents (~130 bytes each) than that
FILE_SIZE_LIMIT = 4096


def limit_file_size() -> None:
    """In the child, before exec: files may not grow past the limit (EFBIG, not a signal)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@pytest.mark.e2e
def test_a_report_at_its_size_limit_stops_the_batch_and_resume_finishes_once(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(
        start_emulator, "--accept-any", "--latency-ms", "10", "--quiet", "--write-burst", "5000"
    )
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text(60))
    report = tmp_path / "report.jsonl"
    args = ("--report", str(report), "--concurrency", "4")
    with start_child(emulator, manifest, *args, preexec_fn=limit_file_size) as child:
        code = child.finish()
    stderr = child.stderr
    assert code == 2, stderr[-3000:]
    assert f"{report}: cannot write the report: File too large (EFBIG)" in stderr
    assert f"--resume --report {report}" in stderr
    assert "Traceback" not in stderr
    written = list(read_records(report))
    assert 0 < len(written) < 60
    # no new runs after the failure: only those already under way (each with its intent, so
    # --resume finds them in ADF); sending stops once the scheduler re-checks after its slot
    intents = sum(1 for r in read_records(journal_path(report)) if r["type"] == "intent")
    created = emulator.stats()["runs_created"]
    assert len(written) < created <= intents <= len(written) + 1 + 4 * TASKS_PER_SLOT

    resumed = run_cli(tmp_path, emulator, manifest_text(60), "--resume", "--reconcile-window", "1")
    assert resumed.code == 0, resumed.stderr[-2000:]
    succeeded = Counter(r["id"] for r in read_records(report) if r["status"] == "succeeded")
    assert len(succeeded) == 60 and set(succeeded.values()) == {1}
    stats = emulator.stats()
    assert stats["runs_created"] == 60
    assert stats["duplicates"] == 0
