"""What ``validate`` and ``run --dry-run`` say of a manifest with needs, in-process: the levels
and the longest chain; the runs in an order they can be triggered in."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import structlog

from batchrun.cli.exits import EXIT_OK, EXIT_USAGE
from batchrun.cli.main import main

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

NIGHT = """version: 1
defaults: {subscription: 11111111-1111-1111-1111-111111111111, resource_group: rg}
runs:
  - {id: export, factory: f-c, pipeline: Export, needs: [marts.*]}
  - {id: marts, factory: f-b, pipeline: [Sales, Stock], needs: loads}
  - {id: loads, factory: [f-a, f-b], pipeline: Load}
"""


@pytest.fixture(autouse=True)
def _logging_reset() -> Iterator[None]:
    """main() sets structlog up for the process: undo it for the next test."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def night(tmp_path: Path) -> Path:
    path = tmp_path / "night.yaml"
    path.write_text(NIGHT)
    return path


def test_validate_prints_the_levels_and_the_longest_chain(
    night: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(night)]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [
        "dependency levels: 3 (level 1: 2 runs, level 2: 2 runs, level 3: 1 run)",
        "longest chain: loads.f-a -> marts.Sales -> export",
    ]


def test_validate_json_has_the_levels_and_the_longest_chain(
    night: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "--format", "json", str(night)]) == EXIT_OK
    (described,) = json.loads(capsys.readouterr().out)["manifests"]
    assert described["levels"] == [2, 2, 1]
    assert described["longest_chain"] == ["loads.f-a", "marts.Sales", "export"]


def test_a_dry_run_lists_each_run_after_the_runs_it_needs(
    night: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--dry-run", str(night)]) == EXIT_OK
    captured = capsys.readouterr()
    ids = [line.split("\t")[0] for line in captured.out.splitlines()]
    assert ids == ["loads.f-a", "loads.f-b", "marts.Sales", "marts.Stock", "export"]
    assert "5 runs in 3 dependency levels; nothing was sent" in captured.err


def test_a_cycle_fails_validate_with_its_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text(NIGHT.replace("pipeline: Load}", "pipeline: Load, needs: export}"))
    assert main(["validate", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert (
        f"{path}:4:58: runs[0].needs[0]: cycle: export -> marts.Sales -> loads.f-a -> export" in err
    )
