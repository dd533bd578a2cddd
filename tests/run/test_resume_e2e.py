"""Resuming, end to end: `--resume` with nothing to resume, a report without its journal, a
journal left without its report, and the hint a stopped batch gives for its default report."""

from __future__ import annotations

import json
import shlex
import signal
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from batchrun.report.reader import read_records
from tests.helpers.child import start_child
from tests.helpers.cli import SUB_A, StartEmulator, batchrun, manifest_text, run_cli, start

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e


def succeeded_per_id(report: Path) -> Counter[str]:
    return Counter(line["id"] for line in read_records(report) if line["status"] == "succeeded")


def log_events(stderr: str) -> list[str]:
    return [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]


def test_resume_with_no_report_and_no_journal_starts_a_new_batch(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(start_emulator, "--accept-any")
    # the deploy recipes' first run of a day: --resume on a report path that is new
    result = run_cli(tmp_path, emulator, manifest_text(5), "--resume")
    assert result.code == 0, result.stderr[-2000:]
    assert succeeded_per_id(result.report) == {line["id"]: 1 for line in result.lines()}
    assert len(result.lines()) == 5
    assert log_events(result.stderr).count("nothing to resume: starting a new batch") == 1
    assert emulator.stats()["runs_created"] == 5
    # the same command again is now a real resume: nothing left to send
    again = run_cli(tmp_path, emulator, manifest_text(5), "--resume")
    assert again.code == 0, again.stderr[-2000:]
    assert "nothing to resume" not in again.stderr
    assert emulator.stats()["runs_created"] == 5


def _manifest_with_ids(count: int, pipeline: str) -> str:
    runs = "".join(
        f"  - {{id: r{n}, subscription: {SUB_A}, factory: factory-0, pipeline: {pipeline}, "
        f"parameters: {{n: {n}}}}}\n"
        for n in range(count)
    )
    return "version: 1\ndefaults: {resource_group: rg-data}\nruns:\n" + runs


def test_resume_refuses_a_report_whose_journal_is_missing(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(start_emulator, "--accept-any")
    first = run_cli(tmp_path, emulator, _manifest_with_ids(3, "LoadOrders"))
    assert first.code == 0, first.stderr[-2000:]
    (tmp_path / "report.jsonl.journal").unlink()
    # another manifest whose ids r0..r2 match the report's: ids alone would skip its runs
    second = run_cli(tmp_path, emulator, _manifest_with_ids(4, "LoadInvoices"), "--resume")
    assert second.code == 2, second.stderr[-2000:]
    assert "report.jsonl.journal is missing" in second.stderr
    assert "another --report" in second.stderr
    assert emulator.stats()["runs_created"] == 3
    assert len(second.lines()) == 3


def test_a_leftover_journal_is_refused_before_a_report_is_created(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(start_emulator, "--accept-any")
    first = run_cli(tmp_path, emulator, manifest_text(3))
    assert first.code == 0, first.stderr[-2000:]
    # the report is gone, its journal (three runs that exist in ADF) is not
    first.report.unlink()
    fresh = run_cli(tmp_path, emulator, manifest_text(3))
    assert fresh.code == 2, fresh.stderr[-2000:]
    assert "report.jsonl.journal" in fresh.stderr and "--resume" in fresh.stderr
    assert not first.report.exists()
    assert emulator.stats()["runs_created"] == 3
    # the way the message shows: the three runs are found in ADF, none is sent again
    resumed = run_cli(tmp_path, emulator, manifest_text(3), "--resume", "--reconcile-window", "1")
    assert resumed.code == 0, resumed.stderr[-2000:]
    assert all(line["reconciled"] for line in resumed.lines())
    assert set(succeeded_per_id(resumed.report).values()) == {1}
    stats = emulator.stats()
    assert stats["runs_created"] == 3
    assert stats["duplicates"] == 0


def test_an_interrupted_batch_names_its_default_report_in_the_resume_hint(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(start_emulator, "--accept-any", "--latency-ms", "40", "--quiet")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text(200))
    with start_child(emulator, manifest, "--concurrency", "2", cwd=tmp_path) as child:
        child.wait_for_event("run.finished")
        child.signal(signal.SIGTERM)
        code = child.finish()
    stdout, stderr = child.stdout, child.stderr
    assert code == 143, stderr[-2000:]
    (hint,) = [line for line in stdout.splitlines() if line.startswith("interrupted by SIGTERM")]
    rerun = shlex.split(hint.partition("rerun with ")[2])
    assert rerun[:2] == ["--resume", "--report"]
    (report,) = tmp_path.glob("batchrun-report-*.jsonl")
    assert rerun[2] == report.name
    resumed = batchrun(emulator, "run", str(manifest), *rerun, cwd=tmp_path)
    assert resumed.code == 0, resumed.stderr[-2000:]
    assert len(succeeded_per_id(report)) == 200
    assert set(succeeded_per_id(report).values()) == {1}
    stats = emulator.stats()
    assert stats["runs_created"] == 200
    assert stats["duplicates"] == 0
