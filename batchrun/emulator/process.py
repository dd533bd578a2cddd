"""Start the emulator as a child process and wait until it listens (demo, tests, benchmarks)."""

from __future__ import annotations

import json
import os
import selectors
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from collections.abc import Sequence

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


@dataclass
class EmulatorProcess:
    process: subprocess.Popen[str]
    log_path: Path | None
    url: str = ""
    # the CA that signed the emulator's --tls-cert, to verify an https emulator with
    cafile: Path | None = None
    returncode: int | None = field(default=None, init=False)

    def stats(self) -> dict[str, Any]:
        """GET /_emulator/stats."""
        context = ssl.create_default_context(cafile=self.cafile) if self.cafile else None
        url = f"{self.url}/_emulator/stats"
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            return cast("dict[str, Any]", json.load(response))

    def log(self) -> str:
        """What the emulator wrote to stderr (one line per request unless --quiet)."""
        return self.log_path.read_text(encoding="utf-8") if self.log_path else ""

    def stop(self) -> int:
        """SIGTERM, then wait; SIGKILL only if it does not exit in time. Returns the exit code."""
        if self.returncode is not None:
            return self.returncode
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.returncode = self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.returncode = self.process.wait()
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()
        return self.returncode

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start(
    args: Sequence[str],
    *,
    log_path: Path | None = None,
    host: str = "127.0.0.1",
    timeout: float = READY_TIMEOUT_S,
    cwd: Path | None = None,
    cafile: Path | None = None,
) -> EmulatorProcess:
    """``python -m batchrun.emulator --port 0 --host HOST *args``, once it prints its URL.

    ``cafile`` is the CA that signed ``--tls-cert`` (for :meth:`EmulatorProcess.stats`).
    """
    command = [sys.executable, "-m", "batchrun.emulator", "--port", "0", "--host", host, *args]
    stderr: IO[str] | int = subprocess.DEVNULL
    if log_path is not None:
        stderr = log_path.open("w", encoding="utf-8")
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=cwd
        )
    finally:
        if not isinstance(stderr, int):
            stderr.close()
    emulator = EmulatorProcess(process, log_path, cafile=cafile)
    try:
        emulator.url = _await_listening(process, timeout)
    except BaseException:
        emulator.stop()
        raise
    return emulator


@dataclass(frozen=True, slots=True)
class Detached:
    """An emulator left running in its own session: its pid, URL and log file."""

    pid: int
    url: str
    log_path: Path


def detach(args: Sequence[str], *, timeout: float = READY_TIMEOUT_S) -> Detached:
    """``python -m batchrun.emulator *args`` in a new session, left running once it listens.

    Its log goes to a new file in the temporary directory; it outlives the caller (stop it with
    SIGTERM to its pid). If it does not listen in time it is stopped and the error raised.
    """
    descriptor, name = tempfile.mkstemp(prefix="batchrun-emulator-", suffix=".log")
    log_path = Path(name)
    with os.fdopen(descriptor, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "batchrun.emulator", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,  # the shell's Ctrl-C and hang-up are not for it
        )
    try:
        url = _await_listening(process, timeout)
    except BaseException:
        EmulatorProcess(process, log_path).stop()
        raise
    assert process.stdout is not None
    process.stdout.close()  # it prints nothing after its URL
    return Detached(process.pid, url, log_path)


def _await_listening(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no 'listening on' line within {timeout}s; stdout: {seen}")
            if not selector.select(remaining):
                continue
            line = process.stdout.readline()
            if not line:
                code = process.wait(timeout=STOP_TIMEOUT_S)
                raise RuntimeError(f"the emulator exited with {code} before listening: {seen}")
            if line.startswith("listening on "):
                return line.removeprefix("listening on ").strip()
            seen.append(line)
