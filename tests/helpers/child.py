"""The real CLI (`batchrun run`) as a child process whose JSON log is read while it runs, and
bounded waits that fail with what they waited for.

A signal test must know the child is ready for it before sending it: :meth:`Child.wait_for`
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

__all__ = ["WAIT_S", "Child", "start_child", "wait_until"]

Event = dict[str, Any]

# how long a test waits for something the child is about to do; far above what it takes on a
# busy machine (a second or two), far below the suite's timeout
WAIT_S = 60.0
_POLL_S = 0.01


class Child:
    """A CLI child process, its stdout and stderr collected line by line as they come; killed
    and reaped when the ``with`` block ends, whatever happened in it."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self._lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._ended: set[str] = set()
        self._seen = 0  # stderr lines a wait has already looked at: the next looks after them
        self._changed = threading.Condition()
        assert process.stdout is not None and process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(process.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._read, args=(process.stderr, "stderr"), daemon=True),
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
            self._ended.add(name)
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stdout(self) -> str:
        with self._changed:
            return "".join(self._lines["stdout"])

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self._lines["stderr"])

    def events(self) -> list[Event]:
        """The JSON log lines the child wrote to stderr so far."""
        with self._changed:
            lines = list(self._lines["stderr"])
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_for(
        self, predicate: Callable[[Event], bool], what: str = "a matching", *,
        timeout: float = WAIT_S,
    ) -> Event:  # fmt: skip
        """The first JSON log line, after those an earlier wait looked at, that satisfies
        ``predicate``; fails the test if none comes in ``timeout`` seconds or the child's stderr
        ends first. ``what`` names the line in that failure."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                lines = self._lines["stderr"]
                while self._seen < len(lines):
                    line = lines[self._seen]
                    self._seen += 1
                    event = _event(line)
                    if event is not None and predicate(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or "stderr" in self._ended:
                    break
                self._changed.wait(min(left, 0.5))
        ended = self.process.poll()
        raise AssertionError(
            f"waited {timeout:.0f} s for {what} log line from the CLI, but "
            + ("it never came" if ended is None else f"the CLI exited {ended} first")
            + f"; its stderr ends with:\n{self.stderr[-2000:]}"
        )

    def wait_for_event(self, event: str, *, timeout: float = WAIT_S) -> Event:
        """The first log line (after those an earlier wait looked at) whose ``event`` is
        ``event``."""
        return self.wait_for(lambda e: e.get("event") == event, f"a {event!r}", timeout=timeout)

    def wait_until(
        self, condition: Callable[[], bool], what: str = "the condition", *,
        timeout: float = WAIT_S,
    ) -> None:  # fmt: skip
        """Until ``condition()`` holds (a file the child writes, say); fails the test if the
        child ends, or ``timeout`` seconds pass, first."""
        if not wait_until(condition, what, process=self.process, timeout=timeout):
            raise AssertionError(
                f"the CLI exited {self.process.returncode} before {what}; "
                f"its stderr ends with:\n{self.stderr[-2000:]}"
            )

    def wait_for_intents(self, journal: Path, count: int) -> None:
        """Until ``journal`` holds ``count`` intents: ``count`` requests on the wire."""
        self.wait_until(
            lambda: journal.exists() and journal.read_text().count('"intent"') >= count,
            f"{count} intents in {journal.name} ({count} requests on the wire)",
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


def _event(line: str) -> Event | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def start_child(
    emulator: EmulatorProcess,
    manifest: Path,
    *args: str,
    cwd: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Child:
    """``python -m batchrun run MANIFEST ARGS --log-format json`` against ``emulator``."""
    command = [sys.executable, "-m", "batchrun", "run", str(manifest), *args]
    process = subprocess.Popen(
        [*command, "--log-format", "json"],
        env=cli_env(emulator),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec_fn,
    )
    return Child(process)


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
