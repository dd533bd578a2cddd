"""The writer's tally of a new report: `run`'s end-of-batch summary without reading the report
back. It must be exactly the summary of the file, or absent where the file holds anything else."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from batchrun.model import RunSpec
from batchrun.report.render import render
from batchrun.report.summary import summarize
from batchrun.report.writer import AppendOnlyJsonl, ReportWriter, RunResult, Status

if TYPE_CHECKING:
    from batchrun.errors import WriteError

T0 = datetime(2026, 12, 3, 2, tzinfo=UTC)
FULL = Path("/dev/full")  # every write fails with ENOSPC


def spec(number: int) -> RunSpec:
    return RunSpec(
        id=f"run-{number % 40:03d}",  # ids come back: a resumed or followed run has more lines
        subscription="11111111-1111-1111-1111-111111111111",
        resource_group="rg",
        factory=f"factory-{number % 3}",
        pipeline=("LoadOrders", "Ingest", "Publiér")[number % 3],
    )


def result(number: int, rng: random.Random) -> RunResult:
    status: Status = rng.choice(("succeeded", "succeeded", "failed", "skipped"))
    started = T0 + timedelta(milliseconds=rng.randrange(0, 600_000))
    extra: dict[str, Any] = {}
    if status == "skipped" and rng.random() < 0.5:
        extra["skipped_because"] = {"needs": "a", "root": "r", "root_outcome": "failed"}
    return RunResult(
        spec=spec(number),
        status=status,
        started_at=started,
        finished_at=started + timedelta(milliseconds=rng.randrange(0, 90_000)),
        attempts=rng.randrange(0, 5),
        run_id=f"adf-{number}" if status == "succeeded" else None,
        http_status=400 if status == "failed" else 200,
        error=(
            {"code": rng.choice(("BadRequest", "PipelineNotFound")), "message": f"m {number} ✓"}
            if status == "failed"
            else None
        ),
        reconciled=rng.random() < 0.1,
        reason="already succeeded" if status == "skipped" else None,
        extra=extra,
    )


def outcome_line(number: int, rng: random.Random) -> dict[str, Any]:
    record = result(number, rng).to_record()
    record.update(
        outcome=rng.choice(("Succeeded", "Failed", "TimedOut")),
        run_status="Failed",
        run_duration_ms=rng.randrange(0, 10_000),
        queued_ms=rng.randrange(0, 500),
        failure={"activity": "Copy", "activity_type": "Copy", "code": "2200", "message": "no"},
        monitor_url="https://adf.azure.com/monitoring/x",
    )
    return record


@pytest.mark.parametrize("seed", range(8))
def test_a_new_reports_tally_is_the_summary_of_the_file(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "r.jsonl"
    with ReportWriter.open(path, resume=False, tally=True) as writer:
        for number in range(rng.randrange(1, 300)):
            if rng.random() < 0.15:
                writer.append(outcome_line(number, rng))
            else:
                writer.write(result(number, rng))
        tally = writer.tally()
    assert tally is not None
    tallied, read = tally.summary([path]), summarize([path])
    assert tallied == read
    assert render(tallied, "table") == render(read, "table")
    assert render(tallied, "json") == render(read, "json")


def test_a_line_without_a_string_id_is_left_out_as_the_reader_leaves_it(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ReportWriter.open(path, resume=False, tally=True) as writer:
        writer.write(result(1, random.Random(1)))
        writer.append({"id": 7, "status": "failed"})
        tally = writer.tally()
    assert tally is not None
    assert tally.summary([path]) == summarize([path])
    assert tally.lines == 1


def test_a_resumed_report_is_not_tallied_its_earlier_lines_are_not_the_writers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "r.jsonl"
    with ReportWriter.open(path, resume=False, tally=True) as writer:
        writer.write(result(1, random.Random(1)))
    with ReportWriter.open(path, resume=True, tally=True) as writer:
        writer.write(result(2, random.Random(2)))
        assert writer.tally() is None


def test_an_empty_report_resumed_is_all_the_writers_and_tallied(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.touch()
    with ReportWriter.open(path, resume=True, tally=True) as writer:
        writer.write(result(1, random.Random(1)))
        tally = writer.tally()
    assert tally is not None
    assert tally.summary([path]) == summarize([path])


def test_a_line_another_process_appended_makes_the_tally_unusable(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ReportWriter.open(path, resume=False, tally=True) as writer:
        writer.write(result(1, random.Random(1)))
        other = AppendOnlyJsonl.open(path, resume=True, what="report", exists_hint="")
        other.append(result(2, random.Random(2)).to_record())
        other.close()
        writer.write(result(3, random.Random(3)))
        assert writer.tally() is None


@pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full (Linux)")
def test_a_line_that_failed_makes_the_tally_unusable(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.symlink_to(FULL)
    failures: list[WriteError] = []
    with ReportWriter.open(path, resume=True, tally=True) as writer:
        writer.on_failure = failures.append
        writer.write(result(1, random.Random(1)))
        assert len(failures) == 1
        assert writer.tally() is None


def test_a_writer_not_asked_to_tally_keeps_nothing(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ReportWriter.open(path, resume=False) as writer:
        writer.write(result(1, random.Random(1)))
        assert writer.tally() is None
