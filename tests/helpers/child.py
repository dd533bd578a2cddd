"""A `batchrun run` child process whose stderr JSON log is read while it runs, so a test can wait
for what the child says (a line, bounded in time) before it signals it."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from tests.helpers.cli import CLI_TIMEOUT_S, cli_env

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from batchrun.emulator.process import EmulatorProcess

__all__ = ["Child", "start_child"]

Event = dict[str, Any]


@dataclass
class Child:
    process: subprocess.Popen[str]
    _stderr: list[str] = field(default_factory=list)
    _stdout: list[str] = field(default_factory=list)
    _events: queue.Queue[Event | None] = field(default_factory=queue.Queue)
    _readers: list[threading.Thread] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for(self, predicate: Callable[[Event], bool], *, timeout: float = 60) -> Event:
        """The first JSON log line (from now on) that satisfies ``predicate``; fails if the
        child ends, or ``timeout`` seconds pass, first."""
        while True:
            try:
                event = self._events.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no such log line within {timeout}s") from None
            if event is None:
                raise AssertionError("the child ended first:\n" + "".join(self._stderr)[-3000:])
            if predicate(event):
                return event

    def wait_until(self, condition: Callable[[], bool], *, polls: int = 6000) -> None:
        """Until ``condition()`` holds (a file the child writes, say): each poll waits up to
        10 ms on the child itself; fails if the child ends, or the polls run out, first."""
        for _ in range(polls):
            if condition():
                return
            try:
                self.process.wait(timeout=0.01)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError("the child ended first:\n" + "".join(self._stderr)[-3000:])
        raise AssertionError(f"the condition did not hold within {polls} polls")

    def finish(self, *, timeout: float = CLI_TIMEOUT_S) -> tuple[int, str, str]:
        """Wait for the child to end: its exit code, stdout and stderr."""
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=timeout)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code, "".join(self._stdout), "".join(self._stderr)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *_: object) -> None:
        # a failed test must not leave the child running (or its pipes open)
        if self.process.poll() is None:
            self.process.kill()
        self.finish()


def _read(stream: TextIO, into: list[str], events: queue.Queue[Event | None] | None) -> None:
    for line in stream:
        into.append(line)
        if events is None:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.put(event)
    if events is not None:
        events.put(None)


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
    child = Child(process)
    assert process.stdout is not None and process.stderr is not None
    for stream, into, events in (
        (process.stdout, child._stdout, None),
        (process.stderr, child._stderr, child._events),
    ):
        reader = threading.Thread(target=_read, args=(stream, into, events), daemon=True)
        reader.start()
        child._readers.append(reader)
    return child
