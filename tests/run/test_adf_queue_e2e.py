"""ADF's own queue, end to end: a full pipeline queue means later, for that pipeline only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.helpers.cli import (
    SUB_A,
    StartEmulator,
    create_answers,
    one_factory,
    run_cli,
    start_configured,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e

TOPOLOGY = one_factory("""
LoadOrders: {parameters: [partition], concurrency: 1}
BuildMarts: {parameters: [partition]}
""")


def manifest(backlog: int, others: int) -> str:
    runs = [
        f"  - {{pipeline: LoadOrders, parameters: {{partition: {n}}}}}\n" for n in range(backlog)
    ]
    runs += [
        f"  - {{pipeline: BuildMarts, parameters: {{partition: {n}}}}}\n" for n in range(others)
    ]
    return (
        f"version: 1\ndefaults:\n  subscription: {SUB_A}\n  resource_group: rg-data\n"
        "  factory: factory-0\nruns:\n" + "".join(runs)
    )


@pytest.mark.parametrize(("status", "code"), [("400", "BadRequest"), ("429", "TooManyRequests")])
def test_a_full_pipeline_queue_is_waited_out_and_other_pipelines_flow(
    tmp_path: Path, start_emulator: StartEmulator, status: str, code: str
) -> None:
    emulator = start_configured(
        start_emulator, tmp_path, TOPOLOGY, "--quiet", "--write-burst", "5000",
        "--run-queued-ms", "10", "--run-duration-ms", "30",
        "--queue-refusal-status", status, "--queue-refusal-code", code,
    )  # fmt: skip
    result = run_cli(tmp_path, emulator, manifest(300, 30), "--max-attempts", "2")
    assert result.code == 0, result.stderr[-2000:]
    lines = result.lines()
    assert len(lines) == 330
    assert {line["status"] for line in lines} == {"succeeded"}
    stats = emulator.stats()
    assert stats["runs_created"] == 330
    assert stats["duplicates"] == 0
    # ADF did refuse: the queue was full, more often than --max-attempts would have allowed
    assert create_answers(emulator).get(status, 0) > 2
    # the other pipeline was not held up behind the backlog: all of it was triggered while
    # most of the backlog still waited for the queue
    backlog = sorted(line["finished_at"] for line in lines if line["pipeline"] == "LoadOrders")
    others = sorted(line["finished_at"] for line in lines if line["pipeline"] == "BuildMarts")
    assert others[-1] < backlog[150]
