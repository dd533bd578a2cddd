"""Every sub-command through the real ``batchrun`` entry point: it is listed, it parses, and its
end-to-end path reaches the one exit-code map (run, validate and summary have their own tests in
test_e2e.py; recover's happy paths are in tests/recover/test_recover_e2e.py)."""

from __future__ import annotations

import selectors
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from batchrun.emulator.process import READY_TIMEOUT_S, EmulatorProcess
from tests.helpers.cli import (
    IDENTITY_HEADER,
    StartEmulator,
    batchrun_offline,
    cli_env,
)
from tests.helpers.recovery_history import FACTORIES, build_history

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e


COMMANDS = ["run", "watch", "cancel", "validate", "summary", "recover", "emulator", "schema"]


def test_help_lists_every_sub_command_in_order() -> None:
    done = batchrun_offline("--help")
    assert done.returncode == 0, done.stderr
    listed = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("    ")]
    assert listed == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_every_sub_command_has_help(command: str) -> None:
    done = batchrun_offline(command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: batchrun {command} ")


def test_a_missing_sub_command_is_a_usage_error() -> None:
    done = batchrun_offline()
    assert done.returncode == 2
    assert "the following arguments are required: COMMAND" in done.stderr


@pytest.fixture
def served() -> Iterator[EmulatorProcess]:
    command = [sys.executable, "-m", "batchrun", "emulator", "--host", "127.0.0.1", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--accept-any", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    emulator = EmulatorProcess(process, None)
    try:
        emulator.url = first_line(process, prefix="listening on ").strip()
        yield emulator
    finally:
        emulator.stop()


def first_line(process: subprocess.Popen[str], *, prefix: str) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0:
            if selector.select(remaining):
                line = process.stdout.readline()
                assert line, f"exited with {process.wait(timeout=10)} before {prefix!r}"
                if line.startswith(prefix):
                    return line.removeprefix(prefix)
    raise TimeoutError(f"no {prefix!r} line within {READY_TIMEOUT_S}s")


def test_emulator_sub_command_serves_until_sigterm(served: EmulatorProcess) -> None:
    assert served.url.startswith("http://127.0.0.1:")
    assert served.stats()["runs_created"] == 0
    assert served.stop() == 0


def test_emulator_sub_command_reports_its_own_config_errors(tmp_path: Path) -> None:
    done = batchrun_offline("emulator", "--config", str(tmp_path / "missing.yaml"))
    assert done.returncode == 2
    assert done.stderr.startswith("batchrun emulator: ")
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_recover_that_cannot_write_its_manifest_exits_2_after_searching(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    history = build_history(datetime.now(UTC))
    emulator = start_emulator(
        "--accept-any", "--history", str(history.write(tmp_path / "history.json")),
        "--identity-header", IDENTITY_HEADER, "--read-burst", "100000", "--quiet",
    )  # fmt: skip
    scope = tmp_path / "scope.yaml"
    scope.write_text(
        "version: 1\nfactories:\n"
        + "".join(
            f"  - {{subscription: {f.subscription}, resource_group: {f.resource_group}, "
            f"factory: {f.factory}}}\n"
            for f in FACTORIES
        )
    )
    # /proc is a directory in which nobody, not even root, can create a file: the disk says no
    output = Path("/proc/recovery.yaml")
    done = batchrun_offline(
        "recover", "--scope", str(scope), "--since", history.since.strftime("%Y-%m-%dT%H:%MZ"),
        "--until", history.until.strftime("%Y-%m-%dT%H:%M:%SZ"), "-o", str(output),
        env=cli_env(emulator),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"batchrun: error: {output}: cannot write the recovery manifest:" in done.stderr
    assert "Traceback" not in done.stderr
    assert "runs to recover" not in done.stdout
    assert emulator.stats()["requests"]["queryPipelineRuns"].get("200", 0) > 0
    assert not output.exists()
