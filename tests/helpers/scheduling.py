"""The scheduler in-process against a fake ADF, its lines read back; a spy on how many at once."""

from __future__ import annotations

import asyncio
import json
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from batchrun.arm.client import RunReader
from batchrun.report.writer import ReportWriter
from batchrun.run.scheduler import Scheduler, SchedulerSettings, Trigger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path

    from batchrun.run.progress import Progress

Key = TypeVar("Key")


class FakeAdf(Trigger, RunReader, Protocol):
    """A fake that both triggers runs and reads them back, as AdfClient does."""


@contextmanager
def scheduler_writing(
    report: Path, adf: FakeAdf, *, settings: SchedulerSettings, progress: Progress
) -> Iterator[Scheduler]:
    """A scheduler that triggers on ``adf`` and writes ``report``, closed on the way out."""
    with ReportWriter.open(report, resume=False) as writer:
        yield Scheduler(
            trigger=adf, writer=writer, settings=settings, progress=progress, reader=adf
        )


def report_lines(report: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in report.read_text().splitlines()]


async def peak_inside(
    hold: Callable[[Key], AbstractAsyncContextManager[None]], keys: Iterable[Key]
) -> int:
    """The most tasks inside ``hold(key)`` at once, one task per key, each staying a few turns."""
    inside = peak = 0

    async def go(key: Key) -> None:
        nonlocal inside, peak
        async with hold(key):
            inside += 1
            peak = max(peak, inside)
            for _ in range(5):
                await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(go(key) for key in keys))
    return peak
