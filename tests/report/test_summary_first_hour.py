"""``summary`` of a file that is not a report is a usage error; the failed ids are named."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import structlog

from batchrun.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from batchrun.cli.main import main
from batchrun.report.render import FAILED_SHOWN, render
from batchrun.report.summary import summarize

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(autouse=True)
def _logging_reset() -> Iterator[None]:
    """main() and configure() set structlog up for the process: undo it for the next test."""
    yield
    structlog.reset_defaults()


def write(path: Path, statuses: list[str]) -> Path:
    lines = [
        {"id": f"run-{n:02}", "factory": "f", "pipeline": "p", "status": status}
        | ({"error": {"code": "BadRequest", "message": "no"}} if status == "failed" else {})
        for n, status in enumerate(statuses)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    "content", ["version: 1\nruns: []\n", '{"not": "a run"}\n', "garbage\nmore garbage\n"]
)
def test_a_file_that_is_not_a_report_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    path = tmp_path / "night.yaml"
    path.write_text(content)
    assert main(["summary", str(path)]) == EXIT_USAGE
    assert f"{path}: not a batchrun report" in capsys.readouterr().err


def test_an_empty_report_is_a_batch_that_wrote_nothing_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("")
    assert main(["summary", str(path)]) == EXIT_OK
    assert capsys.readouterr().out.startswith("0 runs")


def test_the_table_names_the_first_failed_ids_and_counts_the_rest(tmp_path: Path) -> None:
    statuses = ["succeeded", *["failed"] * (FAILED_SHOWN + 2)]
    summary = summarize([write(tmp_path / "r.jsonl", statuses)])
    last = render(summary, "table").splitlines()[-1]
    shown = ", ".join(f"run-{n:02}" for n in range(1, FAILED_SHOWN + 1))
    assert last == f"Failed runs ({FAILED_SHOWN + 2}): {shown} and 2 more"
    assert render(summary, "markdown").splitlines()[-1] == last


def test_json_lists_every_failed_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "r.jsonl", ["failed", "succeeded"] * 8)
    assert main(["summary", "--format", "json", str(path)]) == EXIT_FAILED
    document = json.loads(capsys.readouterr().out)
    assert document["failed_ids"] == [f"run-{n:02}" for n in range(0, 16, 2)]


def test_no_failed_line_when_nothing_failed(tmp_path: Path) -> None:
    summary = summarize([write(tmp_path / "r.jsonl", ["succeeded"])])
    assert "Failed runs" not in render(summary, "table")
    assert summary.to_dict()["failed_ids"] == []
