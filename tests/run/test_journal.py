"""The intent journal: written before each first send, read back by ``--resume``, and refused
when it belongs to another batch (another manifest, or another shard of the same one)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from batchrun import __version__
from batchrun.errors import ReportError
from batchrun.run.journal import BatchIdentity, Journal, journal_path, read_intents

AT = datetime(2026, 11, 26, 2, 0, 0, 123000, tzinfo=UTC)
LATER = datetime(2026, 11, 26, 2, 5, tzinfo=UTC)
FIRST_SHARD = BatchIdentity("f" * 64, "nightly.yaml", "1/2")


def journal_of(tmp_path: Path, identity: BatchIdentity) -> Path:
    report = tmp_path / "report.jsonl"
    with Journal.open(report, identity, resume=False) as journal:
        journal.intent(spec_id="a", client_request_id="r1", at=AT)
        journal.intent(spec_id="b", client_request_id="r2", at=AT)
        journal.intent(spec_id="a", client_request_id="r3", at=LATER)
    return journal_path(report)


def test_the_journal_sits_beside_the_report() -> None:
    assert journal_path(Path("out/night.jsonl")) == Path("out/night.jsonl.journal")


def test_intents_are_read_back_for_the_same_batch_earliest_first(tmp_path: Path) -> None:
    path = journal_of(tmp_path, FIRST_SHARD)
    assert read_intents(path, FIRST_SHARD) == {"a": AT, "b": AT}


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(BatchIdentity("f" * 64, "nightly.yaml", "2/2"), id="another shard"),
        pytest.param(BatchIdentity("f" * 64, "nightly.yaml", None), id="the whole manifest"),
        pytest.param(BatchIdentity("e" * 64, "nightly.yaml", "1/2"), id="another manifest"),
    ],
)
def test_a_journal_of_another_batch_is_refused(tmp_path: Path, other: BatchIdentity) -> None:
    path = journal_of(tmp_path, FIRST_SHARD)
    with pytest.raises(ReportError) as caught:
        read_intents(path, other)
    message = str(caught.value)
    assert str(path) in message
    assert "nightly.yaml, shard 1/2" in message
    assert "or the manifest has changed since (runs, parameters or environment variables); " in (
        message
    )
    assert message.endswith("resume it with the same manifest, or start a new report")


def test_the_batch_line_comes_first_and_names_the_shard(tmp_path: Path) -> None:
    path = journal_of(tmp_path, FIRST_SHARD)
    first = json.loads(path.read_text().splitlines()[0])
    assert (first["type"], first["shard"]) == ("batch", "1/2")
    assert (first["fingerprint"], first["manifest"]) == ("f" * 64, "nightly.yaml")
    assert first["batchrun"] == __version__


def test_an_intent_names_the_run_and_the_request_that_carries_it(tmp_path: Path) -> None:
    path = journal_of(tmp_path, FIRST_SHARD)
    second = json.loads(path.read_text().splitlines()[1])
    assert second == {
        "type": "intent",
        "id": "a",
        "request_id": "r1",
        "at": "2026-11-26T02:00:00.123Z",
    }


def test_an_existing_journal_is_refused_without_resume(tmp_path: Path) -> None:
    journal_of(tmp_path, FIRST_SHARD)
    with pytest.raises(ReportError) as caught:
        Journal.open(tmp_path / "report.jsonl", FIRST_SHARD, resume=False)
    assert str(caught.value) == (
        f"{tmp_path / 'report.jsonl.journal'}: intent journal already exists; "
        "pass --resume to continue that batch, or choose another --report"
    )


def test_a_resumed_journal_keeps_its_batch_line(tmp_path: Path) -> None:
    path = journal_of(tmp_path, FIRST_SHARD)
    with Journal.open(tmp_path / "report.jsonl", FIRST_SHARD, resume=True) as journal:
        journal.intent(spec_id="c", client_request_id="r4", at=LATER)
    kinds = [json.loads(line)["type"] for line in path.read_text().splitlines()]
    assert kinds == ["batch", "intent", "intent", "intent", "intent"]
    assert read_intents(path, FIRST_SHARD) == {"a": AT, "b": AT, "c": LATER}


def test_an_intent_without_a_valid_time_is_an_error_naming_the_run(tmp_path: Path) -> None:
    path = journal_of(tmp_path, FIRST_SHARD)
    with path.open("a") as file:
        file.write('{"type": "intent", "id": "z", "request_id": "r", "at": "yesterday"}\n')
    with pytest.raises(ReportError, match="intent of z has no valid time: 'yesterday'"):
        read_intents(path, FIRST_SHARD)
