"""``--shard K/N`` through the real CLI: only the slice is sent, the N slices send every run
once, and a report is resumed only by the shard that wrote it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from batchrun.manifest.shard import bucket
from tests.helpers.cli import SUB_A, StartEmulator, run_cli, start

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e

IDS = [f"night-{n}" for n in range(12)]
MANIFEST = f"version: 1\ndefaults: {{subscription: {SUB_A}, resource_group: rg-data}}\nruns:\n" + (
    "".join(
        f"  - {{id: {run_id}, factory: factory-0, pipeline: P, parameters: {{n: {n}}}}}\n"
        for n, run_id in enumerate(IDS)
    )
)


def test_the_shards_of_a_manifest_send_each_run_once_and_only_in_its_own_shard(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(start_emulator, "--accept-any")
    sent: dict[str, list[str]] = {}
    for index in (1, 2, 3):
        result = run_cli(
            tmp_path, emulator, MANIFEST, "--shard", f"{index}/3", report_name=f"{index}.jsonl"
        )
        assert result.code == 0, result.stderr
        sent[f"{index}/3"] = [line["id"] for line in result.lines()]
    for shard, ids in sent.items():
        slice_index = int(shard[0]) - 1
        assert sorted(ids) == sorted(i for i in IDS if bucket(i, 3) == slice_index), shard
    # every slice has work here (else this test would prove little), and they partition it
    assert all(sent.values())
    assert sorted(run_id for ids in sent.values() for run_id in ids) == sorted(IDS)
    assert emulator.stats()["runs_created"] == len(IDS)


def test_resume_refuses_a_report_written_by_another_shard(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(start_emulator, "--accept-any")
    first = run_cli(tmp_path, emulator, MANIFEST, "--shard", "1/2")
    assert first.code == 0, first.stderr
    created = emulator.stats()["runs_created"]
    before = first.report.read_text()
    other = run_cli(tmp_path, emulator, MANIFEST, "--shard", "2/2", "--resume")
    assert other.code == 2
    assert "shard 1/2" in other.stderr
    assert "start a new report" in other.stderr
    assert emulator.stats()["runs_created"] == created
    assert first.report.read_text() == before
    whole = run_cli(tmp_path, emulator, MANIFEST, "--resume")
    assert whole.code == 2
    assert emulator.stats()["runs_created"] == created
    same = run_cli(tmp_path, emulator, MANIFEST, "--shard", "1/2", "--resume")
    assert same.code == 0, same.stderr
    assert emulator.stats()["runs_created"] == created
