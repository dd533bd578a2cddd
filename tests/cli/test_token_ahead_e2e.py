"""The first token fetched ahead by a forked child (batchrun/arm/tokenahead.py), through the real
CLI against the emulator: the parent never signs in itself, the identity endpoint is asked once,
nothing is asked before the manifest is valid, a failure reads as it did, no child outlives it.

The CLI runs under a small wrapper (``WRAPPER``) that reports, on its stderr, what only the
parent process can tell: which modules it imported and whether a child of its own is left.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.helpers.cli import CLI_TIMEOUT_S, cli_env, manifest_text, requests, start

if TYPE_CHECKING:
    from pathlib import Path

    from batchrun.emulator.process import EmulatorProcess
    from tests.helpers.cli import StartEmulator

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sys.platform != "linux", reason="the token is fetched ahead on Linux only"),
]

WRAPPER = r"""
import atexit, os, sys, threading, time

def children():
    me, found = str(os.getpid()), []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                if entry.isdigit() and stat.read().rsplit(")", 1)[1].split()[1] == me:
                    found.append(int(entry))
        except (OSError, IndexError):
            pass
    return found

def waiting_for_go(pid):
    try:
        with open(f"/proc/{pid}/wchan") as wchan:
            return "pipe_read" in wchan.read()
    except OSError:
        return False

# registered first, so it runs last: after batchrun's own exit handlers
atexit.register(lambda: print("LEFT", children(), file=sys.stderr, flush=True))

mode, argv = sys.argv[1], sys.argv[2:]
if mode == "in-process":
    # a process with a second thread must not fork: batchrun signs in itself, as before
    threading.Thread(target=threading.Event().wait, daemon=True).start()
if mode == "one-cpu":
    # on one CPU the child's imports would only slow the parent's: none is forked
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
if mode == "hold":
    # the manifest is read only once the child is ready and waiting for its go
    import batchrun.cli.run as run_module
    import batchrun.manifest.loader as loader
    real = loader.load_manifest

    def held(*args, **kwargs):
        deadline = time.monotonic() + 60
        while not any(waiting_for_go(pid) for pid in children()):
            if time.monotonic() > deadline:
                raise SystemExit("HOLD: no child waited for its go")
            time.sleep(0.01)
        print("WAITING", children(), file=sys.stderr, flush=True)
        return real(*args, **kwargs)

    loader.load_manifest = run_module.load_manifest = held

sys.argv = ["batchrun", *argv]
import batchrun.__main__  # the process's start: a run forks its child there
from batchrun.cli.main import main
code = main(argv)
azure = sorted(m for m in sys.modules if m.split(".")[0] == "azure")
print("AZURE", " ".join(azure) or "-", file=sys.stderr, flush=True)
sys.exit(code)
"""


class Wrapped:
    def __init__(self, done: subprocess.CompletedProcess[str]) -> None:
        self.code = done.returncode
        self.stderr = done.stderr

    def said(self, word: str) -> str:
        found = re.findall(rf"^{word} (.*)$", self.stderr, re.MULTILINE)
        assert len(found) == 1, self.stderr
        return str(found[0])

    def auth_message(self) -> str:
        """What the CLI said about the failed sign-in, up to the wrapper's own lines."""
        start = self.stderr.index("batchrun: authentication failed")
        end = self.stderr.index("\nAZURE ", start)
        return self.stderr[start:end]


def wrapped(
    mode: str, tmp_path: Path, emulator: EmulatorProcess, manifest: str, *args: str
) -> Wrapped:
    path = tmp_path / "manifest.yaml"
    path.write_text(manifest)
    report = tmp_path / f"report-{mode}.jsonl"
    argv = ["run", str(path), "--report", str(report), "--log-format", "json", *args]
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, mode, *argv],
        env=cli_env(emulator),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    return Wrapped(done)


def test_the_token_comes_from_the_child_and_the_parent_never_imports_azure(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(start_emulator, "--accept-any")
    result = wrapped("plain", tmp_path, emulator, manifest_text(5))
    assert result.code == 0, result.stderr
    assert result.said("AZURE") == "-"
    assert requests(emulator, "msiToken") == 1
    assert emulator.stats()["runs_created"] == 5
    assert result.said("LEFT") == "[]"


@pytest.mark.parametrize("mode", ["in-process", "one-cpu"])
def test_where_no_child_is_forked_batchrun_signs_in_itself(
    tmp_path: Path, start_emulator: StartEmulator, mode: str
) -> None:
    """The check above can fail: where batchrun signs in itself, the wrapper sees it. A process
    that already runs a thread must not fork; on one CPU the child would only slow the parent."""
    emulator = start(start_emulator, "--accept-any")
    result = wrapped(mode, tmp_path, emulator, manifest_text(2))
    assert result.code == 0, result.stderr
    assert "azure.identity" in result.said("AZURE").split()
    assert requests(emulator, "msiToken") == 1


def test_an_invalid_manifest_asks_no_token_of_a_child_ready_to(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(start_emulator, "--accept-any")
    manifest = manifest_text(3) + "  - {subscription: x, factory: no_underscores, pipeline: P}\n"
    result = wrapped("hold", tmp_path, emulator, manifest)
    assert result.code == 2, result.stderr
    assert "runs[3].factory" in result.stderr
    # the child had its credential and waited; the parent never said go
    child = result.said("WAITING")
    assert child != "[]"
    assert requests(emulator, "msiToken") == 0
    assert requests(emulator, "createRun") == 0
    assert result.said("LEFT") == "[]"


def test_a_refused_sign_in_reads_as_before_and_asks_once(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start_emulator("--accept-any", "--identity-header", "a-different-secret")
    ahead = wrapped("plain", tmp_path, emulator, manifest_text(3))
    asked_ahead = requests(emulator, "msiToken")
    before = wrapped("in-process", tmp_path, emulator, manifest_text(3))
    assert ahead.code == before.code == 3
    assert asked_ahead == 1
    assert requests(emulator, "msiToken") == 2
    assert ahead.auth_message() == before.auth_message()
    assert "IDENTITY_ENDPOINT=" in ahead.auth_message()
    assert ahead.said("AZURE") == "-"
    assert requests(emulator, "createRun") == 0
    assert ahead.said("LEFT") == "[]"


@pytest.mark.parametrize(
    ("args", "code"), [(("--cloud", "Mars"), 2), (("--dry-run",), 0)], ids=["usage", "dry-run"]
)
def test_a_run_that_asks_no_token_leaves_no_child_and_asks_nothing(
    tmp_path: Path, start_emulator: StartEmulator, args: tuple[str, ...], code: int
) -> None:
    emulator = start(start_emulator, "--accept-any")
    result = wrapped("plain", tmp_path, emulator, manifest_text(2), *args)
    assert result.code == code, result.stderr
    assert result.said("AZURE") == "-"
    assert requests(emulator, "msiToken") == 0
    assert requests(emulator, "createRun") == 0
    assert result.said("LEFT") == "[]"
