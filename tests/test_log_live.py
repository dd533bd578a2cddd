"""On a TTY the live progress line and the log share stderr: log lines print above it."""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING

import pytest
import structlog

from batchrun import log
from batchrun.run.progress import Progress, show_progress

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def _logging_reset() -> Iterator[None]:
    """main() and configure() set structlog up for the process: undo it for the next test."""
    yield
    structlog.reset_defaults()


CLEAR = "\r\x1b[2K"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_line_prints_above_the_live_line_which_is_redrawn_below() -> None:
    terminal = Terminal()
    log.configure(fmt="json", stream=terminal)
    live = log.live_line(terminal)
    live.show("3/10 done")
    log.get_logger("t").info("run.finished", id="a")
    live.clear()
    text = terminal.getvalue()
    before, logged, after = text.split(CLEAR)[1:4]
    assert before == "3/10 done"
    line, redrawn = logged.split("\n")
    assert '"event": "run.finished"' in line
    assert redrawn == "3/10 done"
    assert after == ""


def test_without_a_live_line_a_log_line_is_written_as_is() -> None:
    terminal = Terminal()
    log.configure(fmt="json", stream=terminal)
    log.get_logger("t").info("run.finished", id="a")
    assert CLEAR not in terminal.getvalue()
    assert terminal.getvalue().endswith("}\n")


async def test_progress_shows_its_line_through_the_log_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = Terminal()
    log.configure(fmt="json", stream=terminal)
    ticks = 0
    real_sleep = asyncio.sleep

    async def tick(_: float) -> None:
        nonlocal ticks
        ticks += 1
        if ticks == 1:
            return
        log.get_logger("t").info("run.finished", id="b")
        await real_sleep(3600)  # held here until cancelled

    monkeypatch.setattr("batchrun.run.progress.asyncio.sleep", tick)
    shower = asyncio.ensure_future(show_progress(Progress(total=4), stream=terminal, live=True))
    for _ in range(100):  # bounded: until the second tick has logged
        if "run.finished" in terminal.getvalue():
            break
        await real_sleep(0)
    shower.cancel()
    await asyncio.gather(shower, return_exceptions=True)
    text = terminal.getvalue()
    assert text.startswith(CLEAR + "0/4 done")
    logged = text.split(CLEAR)[2]
    assert logged.startswith("{") and logged.split("\n")[1].startswith("0/4 done")
    assert text.endswith(CLEAR)
