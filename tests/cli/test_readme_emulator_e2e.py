"""The README's "By hand" block under "The emulator", run in bash exactly as written.

The commands are read from README.md at test time, so the README cannot drift from what works.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import CLI_TIMEOUT_S
from tests.helpers.paths import ROOT

pytestmark = pytest.mark.e2e

MARKER = "<!-- the commands below are run as written by tests/cli/test_readme_emulator_e2e.py -->"


def readme_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## The emulator\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(re.escape(MARKER) + r"\n```sh\n(.*?)\n```\n", section, re.DOTALL)
    assert found is not None, "README's emulator section lost its tested block"
    return found.group(1)


def test_the_block_starts_the_emulator_and_stops_it() -> None:
    block = readme_block().splitlines()
    assert block[0] == 'eval "$(batchrun emulator --background)"'
    assert block[-1] == 'kill "$BATCHRUN_EMULATOR_PID"'


def test_the_readme_emulator_block_works_when_pasted_into_bash(tmp_path: Path) -> None:
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    drop = ("AZURE_", "MSI_", "IDENTITY_", "BATCHRUN_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    # `batchrun` is this interpreter's entry point, as after `pip install .`
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env |= {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    # the harness only: the emulator is stopped even when a command of the block fails
    harness = (
        'trap \'if [ -n "${BATCHRUN_EMULATOR_PID:-}" ]; then '
        'kill "$BATCHRUN_EMULATOR_PID" 2>/dev/null || true; fi\' EXIT\n'
    )
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", harness + readme_block()],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ADF agrees with the manifest" in done.stdout
    assert "120 of 120 runs" in done.stdout
    assert "120 runs (120 report lines): 120 succeeded, 0 failed, 0 skipped" in done.stdout
    lines = (tmp_path / "demo-by-hand.jsonl").read_text().splitlines()
    assert len(lines) == 120
    assert {json.loads(line)["status"] for line in lines} == {"succeeded"}
