"""The real CLI as a child process whose JSON log is read while it runs (by event name), and
bounded waits that fail with what they waited for.

A signal test must know the child is ready for it before sending it: :meth:`Child.wait_for_event`
waits for a JSON log line (``run.finished``, ``stopping``) on the child's stderr, which is read
by a thread as it comes, so the pipe never fills and the wait is bounded by a deadline, never by
a sleep. :func:`wait_until` polls a condition (a file's content, say) the same way: a poll whose
condition never comes fails the test naming the condition, instead of letting it carry on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any

from tests.helpers.cli import CLI_TIMEOUT_S, cli_env

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from batchrun.emulator.process import EmulatorProcess

__all__ = ["WAIT_S", "Child", "wait_until"]

# how long a test waits for something the child is about to do; far above what it takes on a
# busy machine (a second or two), far below the suite's timeout
WAIT_S = 60.0
_POLL_S = 0.01


class Child:
    """``python -m batchrun run MANIFEST --report REPORT --log-format json ARGS`` as a child
    process, its stdout and stderr collected line by line as they come; killed and reaped when
    the ``with`` block ends, whatever happened in it."""

    def __init__(self, emulator: EmulatorProcess, manifest: Path, report: Path, *args: str):
        command = [sys.executable, "-m", "batchrun", "run", str(manifest), "--report", str(report)]
        self.process = subprocess.Popen(
            [*command, "--log-format", "json", *args],
            env=cli_env(emulator),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._changed = threading.Condition()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, "stderr"), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *_: object) -> None:
        self.kill()

    def _read(self, stream: IO[str], name: str) -> None:
        with stream:
            for line in stream:
                with self._changed:
                    self._lines[name].append(line)
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def stdout(self) -> str:
        with self._changed:
            return "".join(self._lines["stdout"])

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self._lines["stderr"])

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines the child wrote to stderr so far."""
        with self._changed:
            lines = list(self._lines["stderr"])
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_for_event(self, event: str, *, timeout: float = WAIT_S) -> dict[str, Any]:
        """The first log line whose ``event`` is ``event``; fails the test if none comes in
        ``timeout`` seconds or the child ends first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self._lines["stderr"]:
                    if line.startswith("{") and json.loads(line).get("event") == event:
                        return dict(json.loads(line))
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    break
                self._changed.wait(min(left, 0.5))
        ended = self.process.poll()
        raise AssertionError(
            f"waited {timeout:.0f} s for a {event!r} log line from the CLI, but "
            + ("it never came" if ended is None else f"the CLI exited {ended} first")
            + f"; its stderr ends with:\n{self.stderr[-2000:]}"
        )

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def finish(self, *, timeout: float = CLI_TIMEOUT_S, why: str = "") -> int:
        """The exit code, once the child has ended; fails the test (and kills the child) if it
        is still running after ``timeout`` seconds. ``why`` says what should have ended it."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the CLI was still running {timeout:.0f} s later{why}; "
                f"its stderr ends with:\n{self.stderr[-2000:]}"
            ) from None
        for reader in self._readers:
            reader.join(timeout=WAIT_S)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=WAIT_S)
        for reader in self._readers:
            reader.join(timeout=WAIT_S)


def wait_until(
    condition: Callable[[], bool],
    what: str,
    *,
    process: subprocess.Popen[str] | None = None,
    timeout: float = WAIT_S,
) -> bool:
    """Poll ``condition`` until it holds (True) or ``process`` has ended (False); fail the test,
    naming ``what`` it waited for, if neither happens within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process is None:
            time.sleep(_POLL_S)  # a poll interval, not synchronisation: the condition decides
            continue
        try:
            process.wait(timeout=_POLL_S)
        except subprocess.TimeoutExpired:
            continue
        return condition()
    raise AssertionError(f"waited {timeout:.0f} s for {what}; it never came")
