from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from batchrun.errors import ReportError
from batchrun.model import RunSpec
from batchrun.report.render import render
from batchrun.report.summary import summarize
from batchrun.report.writer import ReportWriter, RunResult, Status

if TYPE_CHECKING:
    from pathlib import Path

T0 = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC)


def spec(run_id: str, factory: str = "sales-eu", pipeline: str = "LoadOrders") -> RunSpec:
    return RunSpec(
        id=run_id,
        subscription="11111111-1111-1111-1111-111111111111",
        resource_group="rg-data",
        factory=factory,
        pipeline=pipeline,
    )


def result(
    run_id: str,
    status: Status,
    *,
    start_s: float = 0,
    ms: int = 100,
    attempts: int = 1,
    factory: str = "sales-eu",
    pipeline: str = "LoadOrders",
    code: str | None = None,
    message: str = "",
    reconciled: bool = False,
) -> RunResult:
    started = T0 + timedelta(seconds=start_s)
    error: dict[str, Any] | None = None
    if code is not None:
        error = {"code": code, "message": message, "target": None, "details": []}
    return RunResult(
        spec=spec(run_id, factory, pipeline),
        status=status,
        started_at=started,
        finished_at=started + timedelta(milliseconds=ms),
        attempts=attempts,
        run_id=None if status == "failed" else f"guid-{run_id}",
        http_status=200 if status == "succeeded" else 400,
        error=error,
        reconciled=reconciled,
        reason="already running" if status == "skipped" else None,
    )


def write(path: Path, results: list[RunResult], *, resume: bool = False) -> Path:
    with ReportWriter.open(path, resume=resume) as writer:
        for line in results:
            writer.write(line)
    return path


@pytest.fixture
def report(tmp_path: Path) -> Path:
    return write(
        tmp_path / "report.jsonl",
        [
            result("a", "succeeded", start_s=0, ms=120),
            result("b", "succeeded", start_s=0.5, ms=900, attempts=3, reconciled=True),
            result("c", "succeeded", start_s=1, ms=300, pipeline="BuildMarts"),
            result("d", "failed", start_s=1, ms=50, code="BadRequest", message="no param x"),
            result("e", "failed", start_s=2, ms=70, code="BadRequest", message="no param y"),
            result(
                "f",
                "failed",
                start_s=2,
                ms=2000,
                attempts=5,
                factory="sales-us",
                code="SubscriptionRequestsThrottled",
                message="Number of write requests exceeded | limit",
            ),
            result("g", "skipped", start_s=3, ms=10, factory="sales-us"),
            result("h", "succeeded", start_s=9, ms=1000, attempts=2),
        ],
    )


def test_totals_by_status(report: Path) -> None:
    summary = summarize([report])
    assert dict(summary.statuses) == {"succeeded": 4, "failed": 3, "skipped": 1}
    assert summary.runs == summary.lines == 8
    assert summary.failed


def test_per_pipeline_counts(report: Path) -> None:
    pipelines = {(p.factory, p.pipeline): dict(p.statuses) for p in summarize([report]).pipelines}
    assert pipelines == {
        ("sales-eu", "BuildMarts"): {"succeeded": 1, "failed": 0, "skipped": 0},
        ("sales-eu", "LoadOrders"): {"succeeded": 3, "failed": 2, "skipped": 0},
        ("sales-us", "LoadOrders"): {"succeeded": 0, "failed": 1, "skipped": 1},
    }


def test_error_codes_count_with_the_first_example(report: Path) -> None:
    errors = [(e.code, e.count, e.example) for e in summarize([report]).errors]
    assert errors == [
        ("BadRequest", 2, "no param x"),
        ("SubscriptionRequestsThrottled", 1, "Number of write requests exceeded | limit"),
    ]


def test_attempts_reconciled_slowest_and_span(report: Path) -> None:
    summary = summarize([report])
    assert dict(summary.attempts) == {1: 5, 2: 1, 3: 1, 5: 1}
    assert summary.reconciled == 1
    assert [(s.id, s.duration_ms) for s in summary.slowest] == [
        ("f", 2000),
        ("h", 1000),
        ("b", 900),
        ("c", 300),
        ("a", 120),
    ]
    assert summary.first_started == T0
    assert summary.last_finished == T0 + timedelta(seconds=10)
    assert summary.span_s == 10.0
    assert summary.throughput == pytest.approx(0.8)


def test_resumed_report_counts_a_run_once_by_its_last_line(tmp_path: Path) -> None:
    path = tmp_path / "nightly.jsonl"
    write(path, [result("a", "succeeded"), result("b", "failed", attempts=3, code="Gone")])
    write(path, [result("b", "succeeded", start_s=60, attempts=1)], resume=True)
    summary = summarize([path])
    assert dict(summary.statuses) == {"succeeded": 2, "failed": 0, "skipped": 0}
    assert (summary.runs, summary.lines) == (2, 3)
    assert summary.errors == ()
    assert not summary.failed
    # attempts are summed across the run's lines: b cost 3 + 1 requests
    assert dict(summary.attempts) == {1: 1, 4: 1}


def test_a_run_that_succeeded_then_failed_counts_as_failed(tmp_path: Path) -> None:
    first = write(tmp_path / "one.jsonl", [result("a", "succeeded")])
    second = write(tmp_path / "two.jsonl", [result("a", "failed", code="X", message="m")])
    assert summarize([first, second]).failed
    assert not summarize([second, first]).failed


def test_partial_and_garbled_lines_are_ignored(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", [result("a", "succeeded")])
    with path.open("a", encoding="utf-8") as report:
        report.write("not json\n")
        report.write(json.dumps({"status": "failed"}) + "\n")  # no id: not a run line
        report.write('{"id": "b", "status": "fai')  # cut off by a crash
    summary = summarize([path])
    assert (summary.runs, summary.lines) == (1, 1)
    assert not summary.failed


def test_missing_report_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"no such report: .*missing\.jsonl"):
        summarize([write(tmp_path / "here.jsonl", []), tmp_path / "missing.jsonl"])


def test_empty_report(tmp_path: Path) -> None:
    summary = summarize([write(tmp_path / "empty.jsonl", [])])
    assert (summary.runs, summary.lines, summary.span_s, summary.throughput) == (0, 0, None, None)
    for fmt in ("table", "json", "markdown"):
        assert render(summary, fmt)


def test_json_parses_and_carries_everything(report: Path) -> None:
    data = json.loads(render(summarize([report]), "json"))
    assert data["statuses"] == {"succeeded": 4, "failed": 3, "skipped": 1}
    assert data["runs"] == 8
    assert data["failed"] is True
    assert data["attempts"] == {"1": 5, "2": 1, "3": 1, "5": 1}
    assert data["errors"][0] == {"code": "BadRequest", "count": 2, "example": "no param x"}
    assert data["slowest"][0]["id"] == "f"
    assert data["first_started_at"] == "2026-11-26T02:00:00Z"
    assert data["last_finished_at"] == "2026-11-26T02:00:10Z"
    assert data["span_s"] == 10.0
    assert data["reconciled"] == 1


def test_markdown_has_github_tables(report: Path) -> None:
    text = render(summarize([report]), "markdown")
    lines = text.splitlines()
    assert lines[0] == "## batchrun summary"
    assert "| status | runs |" in lines
    assert lines[lines.index("| status | runs |") + 1] == "|---|---:|"
    assert "| factory | pipeline | succeeded | failed | skipped |" in lines
    assert "| sales-eu | LoadOrders | 3 | 2 | 0 |" in lines
    # a pipe in a message must not break the table
    assert (
        "| SubscriptionRequestsThrottled | 1 | Number of write requests exceeded \\| limit |"
        in lines
    )
    for line in lines:
        if line.startswith("|"):
            assert line.endswith("|")


def test_table_is_aligned(report: Path) -> None:
    text = render(summarize([report]), "table")
    assert text.splitlines()[0] == "8 runs (8 report lines): 4 succeeded, 3 failed, 1 skipped"
    block = text.split("\n\n")[1].splitlines()
    assert block == [
        "Runs by status",
        "status     runs",
        "---------  ----",
        "succeeded     4",
        "failed        3",
        "skipped       1",
        "total         8",
    ]
    assert "wall clock: 2026-11-26T02:00:00Z -> 2026-11-26T02:00:10Z (10.0s, 0.8 lines/s)" in text


def test_render_rejects_an_unknown_format(report: Path) -> None:
    with pytest.raises(ValueError, match="table, json, markdown"):
        render(summarize([report]), "yaml")  # type: ignore[arg-type]  # the wrong format is the point
