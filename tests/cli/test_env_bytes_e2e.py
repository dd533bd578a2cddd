"""An environment variable a manifest substitutes may hold bytes that are not UTF-8 (Python
keeps them as lone surrogates): no URL, request body or report line can carry them. The manifest
is refused at the reference, naming the variable and not its value, and nothing is sent."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.helpers.cli import SUB_A, StartEmulator, requests, run_cli, start

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e

MANIFEST = f"""version: 1
defaults: {{subscription: {SUB_A}, resource_group: rg-data, factory: factory-0}}
runs:
  - {{id: plain, pipeline: LoadOrders, parameters: {{partition: 1}}}}
  - {{id: odd, pipeline: LoadOrders, parameters: {{partition: "p-${{ODD_BYTES}}"}}}}
"""


def test_a_variable_that_is_not_utf8_is_refused_at_its_reference_and_nothing_is_sent(
    tmp_path: Path, start_emulator: StartEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # os.environ gives the child the byte 0xff itself; column 64 is where the reference starts
    monkeypatch.setenv("ODD_BYTES", "secret-\udcff")
    emulator = start(start_emulator, "--accept-any")
    result = run_cli(tmp_path, emulator, MANIFEST)
    assert result.code == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        "manifest.yaml:5:64: runs[1].parameters.partition: environment variable ODD_BYTES "
        "holds bytes that are not UTF-8 text" in result.stderr
    )
    assert "secret" not in result.stderr + result.stdout
    assert "nothing was sent" in result.stderr
    assert requests(emulator, "createRun") == 0
    assert not result.report.exists()
