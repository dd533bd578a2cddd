from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from batchrun.errors import ReportError
from batchrun.model import RunSpec
from batchrun.report.reader import read_records
from batchrun.report.writer import ReportWriter, RunResult, Status

if TYPE_CHECKING:
    from pathlib import Path

SPEC = RunSpec(
    id="sales-eu",
    subscription="11111111-1111-1111-1111-111111111111",
    resource_group="rg",
    factory="sales-eu",
    pipeline="LoadOrders",
)
T0 = datetime(2026, 11, 26, 2, 0, 0, 123456, tzinfo=UTC)


def result(status: Status = "succeeded", spec: RunSpec = SPEC) -> RunResult:
    return RunResult(
        spec=spec,
        status=status,
        started_at=T0,
        finished_at=T0 + timedelta(milliseconds=143),
        attempts=1,
        run_id="2f7fdb90-5df1-4b8e-ac2f-064cfa58202b",
        http_status=200,
    )


def test_line_has_every_contract_field(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ReportWriter.open(path, resume=False) as writer:
        writer.write(result())
    (line,) = path.read_text().splitlines()
    record = json.loads(line)
    assert set(record) == {
        "id", "subscription", "resource_group", "factory", "pipeline", "status", "run_id",
        "attempts", "http_status", "error", "request_id", "correlation_id", "started_at",
        "finished_at", "duration_ms",
    }  # fmt: skip
    assert record["started_at"] == "2026-11-26T02:00:00.123Z"
    assert record["duration_ms"] == 143


def test_existing_report_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "earlier"}\n')
    with pytest.raises(ReportError, match="--resume"):
        ReportWriter.open(path, resume=False)
    assert path.read_text() == '{"id": "earlier"}\n'


def test_resume_appends_after_a_partial_tail(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    whole = json.dumps(result().to_record())
    path.write_text(whole + "\n" + '{"id": "half-writ')
    with ReportWriter.open(path, resume=True) as writer:
        writer.write(result(spec=RunSpec(**{**_fields(SPEC), "id": "next"})))
    lines = path.read_text().splitlines()
    assert lines[0] == whole
    assert lines[1] == '{"id": "half-writ'
    assert json.loads(lines[2])["id"] == "next"
    assert [r["id"] for r in read_records(path)] == ["sales-eu", "next"]


def test_reader_ignores_an_unterminated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(result().to_record()) + "\n" + '{"id": "x", "status": "succ')
    assert _last_status_by_id(path) == {"sales-eu": "succeeded"}


def test_last_line_of_a_run_wins(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ReportWriter.open(path, resume=False) as writer:
        writer.write(result("failed"))
        writer.write(result("succeeded"))
    assert _last_status_by_id(path) == {"sales-eu": "succeeded"}


def test_unwritable_directory_is_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="cannot open"):
        ReportWriter.open(tmp_path / "missing" / "r.jsonl", resume=False)


def _fields(spec: RunSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in spec.__dataclass_fields__}


def _last_status_by_id(path: Path) -> dict[str, str]:
    return {record["id"]: record["status"] for record in read_records(path)}
