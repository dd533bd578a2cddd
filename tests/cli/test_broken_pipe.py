"""A reader that leaves early (`batchrun run --dry-run | head -2`, `batchrun summary | true`): the
CLI stops quietly with 141, as a program killed by SIGPIPE would, and prints no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from batchrun.cli.exits import EXIT_BROKEN_PIPE
from tests.helpers.cli import CLI_TIMEOUT_S, manifest_text

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e

# far more than a pipe holds (64 KiB on Linux), so the CLI is still writing when the reader leaves
RUNS = 3000


@dataclass
class Ended:
    code: int
    first_line: str
    stderr: str


def read_then_close(tmp_path: Path, *args: str, lines: int) -> Ended:
    """Run the CLI with stdout into a pipe; read ``lines`` lines of it, then close the pipe."""
    stderr_path = tmp_path / "stderr.txt"
    with (
        stderr_path.open("wb") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "batchrun", *args], stdout=subprocess.PIPE, stderr=stderr
        ) as process,
    ):
        assert process.stdout is not None
        read = [process.stdout.readline() for _ in range(lines)]
        process.stdout.close()
        code = process.wait(timeout=CLI_TIMEOUT_S)
    first = read[0].decode() if read else ""
    return Ended(code, first, stderr_path.read_text())


def assert_quiet(ended: Ended) -> None:
    assert ended.code == EXIT_BROKEN_PIPE, ended.stderr
    for noise in ("Traceback", "BrokenPipeError", "Exception ignored"):
        assert noise not in ended.stderr


@pytest.mark.parametrize("lines", [2, 0], ids=["head-2", "true"])
def test_dry_run_into_a_reader_that_leaves_ends_with_141_and_no_traceback(
    tmp_path: Path, lines: int
) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text(RUNS))
    ended = read_then_close(tmp_path, "run", str(manifest), "--dry-run", lines=lines)
    assert_quiet(ended)
    if lines:
        assert ended.first_line.startswith("factory-0.LoadOrders\tPOST\thttps://")
    # the reader left long before the end: the closing count was never reached
    assert f"{RUNS} runs; nothing was sent" not in ended.stderr


@pytest.mark.parametrize("lines", [1, 0], ids=["head-1", "true"])
def test_summary_into_a_reader_that_leaves_ends_with_141_and_no_traceback(
    tmp_path: Path, lines: int
) -> None:
    report = tmp_path / "report.jsonl"
    with report.open("w") as out:
        for n in range(RUNS):
            line = {
                "id": f"run-{n}",
                "factory": f"factory-{n}",
                "pipeline": f"Pipeline{n}",
                "status": "succeeded",
                "attempts": 1,
                "duration_ms": n,
            }
            out.write(json.dumps(line) + "\n")
    ended = read_then_close(tmp_path, "summary", str(report), lines=lines)
    assert_quiet(ended)
    if lines:
        assert ended.first_line.strip()


def test_a_reader_that_reads_everything_sees_the_usual_exit(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text(RUNS))
    done = subprocess.run(
        [sys.executable, "-m", "batchrun", "run", str(manifest), "--dry-run"],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == RUNS
