"""Counters of a batch and how they are shown while it runs and when it ends."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TextIO

from batchrun.log import get_logger

_LIVE_EVERY_S = 0.5
_LOG_EVERY_S = 10.0


@dataclass(slots=True)
class Progress:
    total: int
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    retries: int = 0
    throttled: int = 0
    in_flight: int = 0
    reconciled: int = 0
    reads: int = 0
    # how long ADF may take to list a new run, once reconciliation has looked for one
    window: str = ""

    def count_finished(self, status: str) -> None:
        """One more run ended, with its report status."""
        self.done += 1
        if status == "succeeded":
            self.succeeded += 1
        elif status == "failed":
            self.failed += 1
        else:
            self.skipped += 1

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def rate(self) -> float:
        elapsed = self.elapsed()
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        rate = self.rate()
        return (self.total - self.done) / rate if rate > 0 else None

    def line(self) -> str:
        eta = self.eta_s()
        eta_text = f"{eta:.0f}s" if eta is not None else "?"
        return (
            f"{self.done}/{self.total} done  {self.rate():.1f} runs/s  ETA {eta_text}  "
            f"in flight {self.in_flight}  retries {self.retries}  429s {self.throttled}  "
            f"failed {self.failed}  reconciled {self.reconciled} ({self.reads} reads)"
        )

    def summary(self) -> str:
        return (
            f"{self.done} of {self.total} runs in {self.elapsed():.1f}s: "
            f"{self.succeeded} succeeded, {self.failed} failed, {self.skipped} skipped "
            f"({self.retries} retries, {self.throttled} throttled, "
            f"{self.reconciled} found by reconciliation in {self.reads} reads"
            + (f"; {self.window})" if self.window else ")")
        )


async def show_progress(progress: Progress, *, stream: TextIO, live: bool) -> None:
    """Until cancelled: a live status line on a TTY, else a log line every 10 seconds."""
    log = get_logger("batchrun.run.progress")
    try:
        while True:
            await asyncio.sleep(_LIVE_EVERY_S if live else _LOG_EVERY_S)
            if live:
                stream.write("\r\x1b[2K" + progress.line())
                stream.flush()
            else:
                log.info(
                    "progress",
                    done=progress.done,
                    total=progress.total,
                    rate=round(progress.rate(), 1),
                    eta_s=None if progress.eta_s() is None else round(progress.eta_s() or 0),
                    in_flight=progress.in_flight,
                    retries=progress.retries,
                    throttled=progress.throttled,
                    failed=progress.failed,
                    reconciled=progress.reconciled,
                    reads=progress.reads,
                )
    finally:
        if live:
            stream.write("\r\x1b[2K")
            stream.flush()
