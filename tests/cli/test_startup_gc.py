"""The process starts with the cyclic collector off: its imports and parser make a few hundred
thousand lasting objects and next to no garbage, which the collector would walk about a hundred
times before a batch's first request. The command itself runs with it on."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.helpers.cli import CLI_TIMEOUT_S

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e

CHECK = """
import gc, sys
def collections():
    return sum(generation["collections"] for generation in gc.get_stats())
before = collections()
import batchrun.__main__  # the process's start, as `python -m batchrun` and the script run it
import batchrun.cli.run, batchrun.cli.summary, batchrun.cli.validate
during = collections() - before
off_until_main = not gc.isenabled()
seen = []
import batchrun.cli.validate as validate
command = validate.command
def spy(args):
    seen.append(gc.isenabled())
    return command(args)
validate.command = spy
import batchrun.cli.main as cli_main
code = cli_main.main(["validate", sys.argv[1]])
print(during, off_until_main, seen, code)
"""


def test_start_up_imports_run_without_collections_and_the_command_with_the_collector_on(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "version: 1\nruns:\n  - {subscription: s, resource_group: rg, factory: fac, pipeline: p}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", CHECK, str(manifest)],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    during, off_until_main, seen, code = done.stdout.splitlines()[-1].split(" ", 3)
    # with the collector on, these imports collect ~100 times; the package's own import, before
    # batchrun/__main__.py turns it off, may make one
    assert int(during) <= 1
    assert off_until_main == "True"
    assert (seen, code) == ("[True]", "0")
