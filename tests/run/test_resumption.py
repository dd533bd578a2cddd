"""What a resume may start from: checked before any file is created, never on run ids alone."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from batchrun.errors import ReportError
from batchrun.manifest.loader import Manifest
from batchrun.model import RunSpec
from batchrun.run.journal import BatchIdentity, journal_path, read_intents
from batchrun.run.runner import BatchSettings, HandedRuns, handed_on, resumption

if TYPE_CHECKING:
    from pathlib import Path

SPECS = tuple(
    RunSpec(id=f"r{n}", subscription="s", resource_group="rg", factory="f", pipeline="p")
    for n in range(3)
)
MANIFEST = Manifest("m.yaml", SPECS, (), "fingerprint")
IDENTITY = BatchIdentity("fingerprint", "m.yaml", None)
BATCH_LINE = json.dumps(IDENTITY.line()) + "\n"
SUCCEEDED = '{"id": "r0", "status": "succeeded", "run_id": "run-0"}\n'


def settings(report: Path, *, resume: bool) -> BatchSettings:
    return BatchSettings(report=report, endpoint="http://127.0.0.1:1", resume=resume)


def test_resume_with_neither_report_nor_journal_is_a_new_batch(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    resumed = resumption(MANIFEST.runs, settings(report, resume=True), IDENTITY)
    assert [spec.id for spec in resumed.todo] == ["r0", "r1", "r2"]
    assert resumed.already_succeeded == 0
    assert not report.exists() and not journal_path(report).exists()


def test_an_empty_report_without_a_journal_has_nothing_to_mistake(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    report.write_text("")
    resumed = resumption(MANIFEST.runs, settings(report, resume=True), IDENTITY)
    assert len(resumed.todo) == 3


def test_a_report_with_lines_but_no_journal_is_refused(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    report.write_text(SUCCEEDED)
    with pytest.raises(ReportError, match=r"r\.jsonl\.journal is missing"):
        resumption(MANIFEST.runs, settings(report, resume=True), IDENTITY)


@pytest.mark.parametrize(
    "journal",
    ["", '{"type": "intent", "id": "r1", "at": "2026-11-26T02:00:00Z"}\n' + BATCH_LINE],
    ids=["empty", "intent-first"],
)
def test_a_journal_that_does_not_start_with_its_batch_line_is_refused(
    tmp_path: Path, journal: str
) -> None:
    report = tmp_path / "r.jsonl"
    report.write_text(SUCCEEDED)
    journal_path(report).write_text(journal)
    with pytest.raises(ReportError, match="no batch line"):
        resumption(MANIFEST.runs, settings(report, resume=True), IDENTITY)


def test_a_journal_with_its_batch_line_resumes(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    report.write_text(SUCCEEDED)
    journal_path(report).write_text(BATCH_LINE)
    resumed = resumption(MANIFEST.runs, settings(report, resume=True), IDENTITY)
    assert [spec.id for spec in resumed.todo] == ["r1", "r2"]
    assert resumed.claimed == {"run-0"}
    assert read_intents(journal_path(report), IDENTITY) == {}


def test_a_new_batch_refuses_a_leftover_journal_and_creates_nothing(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    journal_path(report).write_text(BATCH_LINE)
    with pytest.raises(ReportError, match="--resume --report") as refused:
        resumption(MANIFEST.runs, settings(report, resume=False), IDENTITY)
    assert str(journal_path(report)) in str(refused.value)
    assert not report.exists()


def test_the_runs_are_handed_over_once_and_dropped_as_they_are_handed_on() -> None:
    handed = HandedRuns(MANIFEST)
    todo = handed.take()
    with pytest.raises(RuntimeError, match="already taken"):
        handed.take()
    order = handed_on(todo)
    assert next(order) == SPECS[0]
    # the list no longer holds what was handed on: the scheduler's reference is the last one
    assert todo == list(reversed(SPECS[1:]))
    assert list(order) == list(SPECS[1:])
    assert todo == []
