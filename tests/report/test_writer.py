"""The report writer's file: how it is created, how a line is written and what it holds, and
what its errors say. (The contract fields themselves: tests/report/test_report.py.)"""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from batchrun.errors import ReportError
from batchrun.model import RunSpec
from batchrun.report.writer import ReportWriter, RunResult

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SPEC = RunSpec(
    id="ventes-été",
    subscription="11111111-1111-1111-1111-111111111111",
    resource_group="rg",
    factory="sales-eu",
    pipeline="LoadOrders",
)
T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def skipped(reason: str | None) -> RunResult:
    return RunResult(
        spec=SPEC, status="skipped", started_at=T0, finished_at=T0, attempts=0, reason=reason
    )


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("umask_022")
def test_a_new_report_is_readable_by_all_and_writable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ReportWriter.open(path, resume=False) as writer:
        writer.write(skipped(None))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_skipped_line_says_why_and_only_a_skipped_line_has_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ReportWriter.open(path, resume=False) as writer:
        writer.write(skipped("already succeeded on 2026-11-25"))
        writer.write(skipped(None))
    with_reason, without = (json.loads(line) for line in path.read_text().splitlines())
    assert with_reason["reason"] == "already succeeded on 2026-11-25"
    assert "reason" not in without


def test_text_is_written_as_utf8_not_escaped(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ReportWriter.open(path, resume=False) as writer:
        writer.write(skipped("déjà fait"))
    raw = path.read_bytes()
    assert "ventes-été".encode() in raw and "déjà fait".encode() in raw
    assert b"\\u" not in raw


def test_the_writer_knows_its_path(tmp_path: Path) -> None:
    with ReportWriter.open(tmp_path / "r.jsonl", resume=False) as writer:
        assert writer.path == tmp_path / "r.jsonl"


def test_an_existing_report_is_refused_naming_it_and_the_way_out(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("")
    with pytest.raises(ReportError) as caught:
        ReportWriter.open(path, resume=False)
    assert str(caught.value) == (
        f"{path}: report already exists; "
        "pass --resume to continue it, or choose another path with --report"
    )


def test_duration_is_rounded_to_the_millisecond() -> None:
    late = RunResult(
        spec=SPEC,
        status="succeeded",
        started_at=T0,
        finished_at=T0 + timedelta(microseconds=1500),
        attempts=1,
    )
    assert late.to_record()["duration_ms"] == 2


def test_a_lone_surrogate_in_an_answer_is_written_as_its_json_escape_and_reads_back_the_same(
    tmp_path: Path,
) -> None:
    # an answer's JSON may escape half a surrogate pair ("\ud800"): it has no UTF-8, and the
    # line (and the run's result) must not be lost for it
    path = tmp_path / "r.jsonl"
    message = "pipeline 'été' \ud800 not found"
    failed = RunResult(
        spec=SPEC, status="failed", started_at=T0, finished_at=T0, attempts=1,
        error={"code": "PipelineNotFound", "message": message},
    )  # fmt: skip
    with ReportWriter.open(path, resume=False) as writer:
        writer.write(failed)
        writer.write(skipped(None))
    raw = path.read_bytes()
    raw.decode("utf-8")  # the whole file stays UTF-8
    assert b"\\ud800" in raw
    first, second = (json.loads(line) for line in raw.splitlines())
    assert first["error"]["message"] == message and first["id"] == SPEC.id
    # only the line that needs it is escaped: the next is plain UTF-8 again
    assert "ventes-été".encode() in raw.splitlines()[1]
    assert second["status"] == "skipped"
