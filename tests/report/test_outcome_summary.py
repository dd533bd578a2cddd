"""``summary`` of outcome lines: outcomes, failures by activity error code, percentiles."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from batchrun.report.outcome import Percentiles
from batchrun.report.render import render
from batchrun.report.summary import summarize

if TYPE_CHECKING:
    from pathlib import Path


def trigger(id_: str, pipeline: str = "LoadOrders", **extra: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "factory": "sales-eu",
        "pipeline": pipeline,
        "status": "succeeded",
        "run_id": f"guid-{id_}",
        "attempts": 1,
        "started_at": "2026-11-26T02:00:00.000Z",
        "finished_at": "2026-11-26T02:00:00.100Z",
        "duration_ms": 100,
        **extra,
    }


def ended(id_: str, outcome: str, ms: int, **extra: Any) -> dict[str, Any]:
    return trigger(
        id_,
        outcome=outcome,
        run_duration_ms=ms,
        queued_ms=ms // 10,
        monitor_url=f"https://adf.azure.com/en/monitoring/pipelineruns/guid-{id_}?factory=/x",
        **extra,
    )


def failure(code: str, message: str) -> dict[str, Any]:
    return {"activity": "CopyOrders", "activity_type": "Copy", "code": code, "message": message}


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def test_percentiles_are_nearest_rank() -> None:
    assert Percentiles.of(list(range(1, 101))) == Percentiles(100, 50, 95, 100)
    assert Percentiles.of([7]) == Percentiles(1, 7, 7, 7)
    assert Percentiles.of([]) is None


def test_outcomes_failures_and_times(tmp_path: Path) -> None:
    records = [trigger(f"r{n}") for n in range(5)]
    records += [ended(f"r{n}", "Succeeded", 1000 * (n + 1)) for n in range(3)]
    records.append(ended("r3", "Failed", 500, failure=failure("2200", "the blob is missing")))
    # r4 has no outcome line: triggered, not followed
    report = write(tmp_path / "r.jsonl", records)
    summary = summarize([report])
    assert summary.failed  # a followed run failed: summary exits 1
    followed = summary.to_dict()["followed"]
    assert followed["outcomes"] == {
        "Succeeded": 3,
        "Failed": 1,
        "Cancelled": 0,
        "TimedOut": 0,
        "not followed": 1,
    }
    assert followed["failures"] == [
        {
            "code": "2200",
            "count": 1,
            "activity": "CopyOrders",
            "example": "the blob is missing",
            "monitor_url": "https://adf.azure.com/en/monitoring/pipelineruns/guid-r3?factory=/x",
        }
    ]
    assert followed["run_duration_ms"] == {"count": 4, "p50": 1000, "p95": 3000, "max": 3000}
    # an outcome line repeats the trigger's attempts: they are not counted twice
    assert summary.attempts == {1: 5}
    table = render(summary, "table")
    assert "Failures by activity error code" in table and "Run times (ms)" in table
    assert "| 2200 | 1 | CopyOrders |" in render(summary, "markdown")


def test_all_succeeded_is_not_failed_and_trigger_only_reports_show_no_outcomes(
    tmp_path: Path,
) -> None:
    ok = write(tmp_path / "ok.jsonl", [trigger("a"), ended("a", "Succeeded", 10)])
    assert not summarize([ok]).failed
    plain = summarize([write(tmp_path / "plain.jsonl", [trigger("a")])])
    assert plain.outcomes is None
    assert "Outcomes" not in render(plain, "table")
    assert plain.to_dict()["followed"] is None
