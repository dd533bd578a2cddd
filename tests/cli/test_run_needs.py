"""``batchrun run`` with needs: a run skipped because of a dependency fails the batch (exit 1),
with or without ``--wait``; ``--shard`` refuses a slice whose runs need a run of another slice."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from batchrun.cli.exits import EXIT_FAILED, EXIT_OK
from batchrun.cli.run import _finish, _needs_in_shard
from batchrun.errors import UsageError
from batchrun.manifest.loader import Manifest
from batchrun.manifest.shard import parse_shard, select
from batchrun.model import RunSpec, position
from batchrun.run.progress import Progress
from batchrun.run.runner import BatchOutcome

if TYPE_CHECKING:
    from pathlib import Path


def outcome(*, blocked: int = 0, undecided: int = 0) -> BatchOutcome:
    progress = Progress(total=3)
    for _ in range(3 - blocked - undecided):
        progress.count_finished("succeeded")
    for _ in range(blocked):
        progress.count_finished("skipped")
        progress.blocked += 1
    return BatchOutcome(
        progress=progress, already_succeeded=0, auth_error=None, signal=None, undecided=undecided
    )


def test_a_run_skipped_because_of_a_dependency_fails_the_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.jsonl"
    assert _finish(outcome(), report) == EXIT_OK
    assert _finish(outcome(blocked=1), report) == EXIT_FAILED
    assert "1 of them as a run they need did not succeed" in capsys.readouterr().out


def test_dependents_left_undecided_fail_the_batch_and_say_how_to_go_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.jsonl"
    assert _finish(outcome(undecided=2), report) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "2 runs not triggered" in err and f"--resume --report {report}" in err


def spec(run_id: str) -> RunSpec:
    return RunSpec(run_id, "s", "rg", "f", "p", file="m.yaml", at=position(len(run_id), 3))


def test_a_shard_must_hold_what_its_runs_need() -> None:
    runs = tuple(spec(f"load.{n}") for n in range(8)) + tuple(spec(f"mart.{n}") for n in range(8))
    needs = {f"mart.{n}": (f"load.{n}",) for n in range(8)}
    manifest = Manifest("m.yaml", runs, (), "fp", needs=needs)
    shard = parse_shard("1/2")
    sliced = Manifest("m.yaml", tuple(select(runs, shard)), (), "fp", needs=needs)
    with pytest.raises(UsageError, match=r"m\.yaml:\d+:3: mart\.\d needs load\.\d, which --shard"):
        _needs_in_shard(sliced, "1/2")
    # a slice that holds every run its runs need keeps their needs, and only theirs
    pair = Manifest("m.yaml", (runs[0], runs[8]), (), "fp", needs=needs)
    assert _needs_in_shard(pair, "1/2").needs == {"mart.0": ("load.0",)}
    assert _needs_in_shard(manifest, "1/1").needs == needs
