"""What ``--resume`` takes from an earlier report and its journal, in-process: the runs still to
trigger, the runIds already claimed, and the intents to ask ADF about (the e2e side:
test_exactly_once.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from batchrun.errors import ReportError
from batchrun.manifest.loader import Manifest
from batchrun.model import RunSpec
from batchrun.run.journal import BatchIdentity, Journal
from batchrun.run.reconcile import RECONCILE_FAILED
from batchrun.run.runner import BatchSettings, resumption

if TYPE_CHECKING:
    from pathlib import Path

AT = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
IDS = ("ok", "failed", "ok-then-failed", "lost-answer", "intent-only", "never-started")
MANIFEST = Manifest(
    "nightly.yaml",
    tuple(RunSpec(run_id, "sub", "rg", "factory-a", "LoadOrders") for run_id in IDS),
    (),
    "f" * 64,
)
IDENTITY = BatchIdentity(MANIFEST.fingerprint, MANIFEST.path, None)


def settings(report: Path, *, resume: bool = True) -> BatchSettings:
    return BatchSettings(report=report, endpoint="http://127.0.0.1:1", resume=resume)


def line(spec_id: str, status: str, **fields: Any) -> str:
    return json.dumps({"id": spec_id, "status": status, **fields}) + "\n"


@pytest.fixture
def report(tmp_path: Path) -> Path:
    path = tmp_path / "report.jsonl"
    with Journal.open(path, IDENTITY, resume=False) as journal:
        for run_id in IDS[:-1]:
            journal.intent(spec_id=run_id, client_request_id=f"r-{run_id}", at=AT)
    path.write_text(
        line("ok", "succeeded", run_id="run-ok")
        + line("failed", "failed", error={"code": "PipelineNotFound"})
        + line("ok-then-failed", "succeeded", run_id="run-3")
        + line("ok-then-failed", "failed", error={"code": "BadRequest"})
        + line("lost-answer", "failed", error={"code": RECONCILE_FAILED})
        + line("no-run-id", "succeeded")
        + json.dumps({"id": 7, "status": "succeeded", "run_id": "x"})
        + "\n"
    )
    return path


def test_a_new_batch_takes_every_run_and_nothing_from_files(tmp_path: Path) -> None:
    resumed = resumption(MANIFEST.runs, settings(tmp_path / "r.jsonl", resume=False), IDENTITY)
    assert [spec.id for spec in resumed.todo] == list(IDS)
    assert (resumed.already_succeeded, resumed.claimed, resumed.intents) == (0, set(), {})


def test_resume_skips_what_succeeded_last_and_keeps_what_may_exist(report: Path) -> None:
    resumed = resumption(MANIFEST.runs, settings(report), IDENTITY)
    # the last line of an id tells its state: a later failure undoes a success
    assert [spec.id for spec in resumed.todo] == [
        "failed", "ok-then-failed", "lost-answer", "intent-only", "never-started",
    ]  # fmt: skip
    assert resumed.already_succeeded == 1
    assert resumed.claimed == {"run-ok"}
    # ADF is asked about a run whose request may have created it: no answer, or a look in vain
    assert {run_id for run_id in resumed.intents if run_id != "ok"} == {
        "lost-answer", "intent-only",
    }  # fmt: skip
    assert resumed.intents["intent-only"] == AT


def test_a_success_without_a_run_id_is_not_taken_as_one(report: Path) -> None:
    manifest = Manifest(
        MANIFEST.path, (RunSpec("no-run-id", "sub", "rg", "f-a", "P"),), (), MANIFEST.fingerprint
    )
    resumed = resumption(manifest.runs, settings(report), IDENTITY)
    assert [spec.id for spec in resumed.todo] == ["no-run-id"]
    assert resumed.already_succeeded == 0


def test_a_journal_without_a_report_is_resumed(tmp_path: Path) -> None:
    # killed after the first intent, before the first line
    report = tmp_path / "report.jsonl"
    with Journal.open(report, IDENTITY, resume=False) as journal:
        journal.intent(spec_id="ok", client_request_id="r", at=AT)
    resumed = resumption(MANIFEST.runs, settings(report), IDENTITY)
    assert len(resumed.todo) == len(IDS)
    assert resumed.intents == {"ok": AT}


def test_a_report_of_another_shard_is_refused(report: Path) -> None:
    other = BatchIdentity(MANIFEST.fingerprint, MANIFEST.path, "1/2")
    with pytest.raises(ReportError, match="shard None"):
        resumption(MANIFEST.runs, settings(report), other)
