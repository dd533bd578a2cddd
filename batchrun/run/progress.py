"""Counters of a batch and how they are shown while it runs and when it ends."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from batchrun.log import get_logger, live_line

if TYPE_CHECKING:
    from collections.abc import Callable

_LIVE_EVERY_S = 0.5
_LOG_EVERY_S = 10.0


@dataclass(slots=True)
class Progress:
    total: int
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)
    triggered: float | None = None
    """When the last run's trigger line was counted: following runs to their end (``--wait``)
    after it is not triggering time, and must not slow the rate or stretch the elapsed time."""
    done: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    blocked: int = 0
    """Of ``skipped``: not triggered because a run they need did not succeed."""
    retries: int = 0
    throttled: int = 0
    in_flight: int = 0
    reconciled: int = 0
    reads: int = 0
    # how long ADF may take to list a new run, once reconciliation has looked for one
    window: str = ""

    def __post_init__(self) -> None:
        self.started = self.clock()

    def count_finished(self, status: str) -> None:
        """One more run ended, with its report status."""
        self.done += 1
        if self.done >= self.total and self.triggered is None:
            self.triggered = self.clock()
        if status == "succeeded":
            self.succeeded += 1
        elif status == "failed":
            self.failed += 1
        else:
            self.skipped += 1

    def elapsed(self) -> float:
        end = self.clock() if self.triggered is None else self.triggered
        return end - self.started

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
        blocked = f", {self.blocked} of them as a run they need did not succeed"
        return (
            f"{self.done} of {self.total} runs in {self.elapsed():.1f}s: "
            f"{self.succeeded} succeeded, {self.failed} failed, {self.skipped} skipped"
            + (blocked if self.blocked else "")
            + f" ({self.retries} retries, {self.throttled} throttled, "
            f"{self.reconciled} found by reconciliation in {self.reads} reads"
            + (f"; {self.window})" if self.window else ")")
        )


async def show_progress(progress: Progress, *, stream: TextIO, live: bool) -> None:
    """Until cancelled: a live status line on a TTY, else a log line every 10 seconds."""

    def fields() -> dict[str, object]:
        eta = progress.eta_s()
        return {
            "done": progress.done,
            "total": progress.total,
            "rate": round(progress.rate(), 1),
            "eta_s": None if eta is None else round(eta),
            "in_flight": progress.in_flight,
            "retries": progress.retries,
            "throttled": progress.throttled,
            "failed": progress.failed,
            "reconciled": progress.reconciled,
            "reads": progress.reads,
        }

    await _show(progress.line, "progress", fields, stream=stream, live=live)


async def _show(
    line: Callable[[], str],
    event: str,
    fields: Callable[[], dict[str, object]],
    *,
    stream: TextIO,
    live: bool,
) -> None:
    """Until cancelled: ``line()`` redrawn in place on a TTY (log lines print above it, never
    glued onto it), else the ``event`` log line with ``fields()`` every 10 seconds."""
    log = get_logger("batchrun.run.progress")
    status = live_line(stream)
    try:
        while True:
            await asyncio.sleep(_LIVE_EVERY_S if live else _LOG_EVERY_S)
            if live:
                status.show(line())
            else:
                log.info(event, **fields())
    finally:
        status.clear()


_FOLLOW_ORDER = (
    "Queued",
    "InProgress",
    "Canceling",
    "Succeeded",
    "Failed",
    "Cancelled",
    "TimedOut",
)


@dataclass(slots=True)
class FollowProgress:
    """Counters while runs are followed (``--wait``, ``watch``): the runs by ADF status.

    A run not seen yet counts as Queued (it was just triggered).
    """

    total: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    done: int = 0
    polls: int = 0
    reads: int = 0
    activity_reads: int = 0
    throttled: int = 0

    def counts(self) -> dict[str, int]:
        ordered = {name: self.statuses.get(name, 0) for name in _FOLLOW_ORDER}
        ordered.update((k, v) for k, v in sorted(self.statuses.items()) if k not in ordered)
        return {
            name: count for name, count in ordered.items() if count or name in _FOLLOW_ORDER[:5]
        }

    def line(self) -> str:
        counts = "  ".join(f"{name} {count}" for name, count in self.counts().items())
        return (
            f"following {self.total}: {counts}  ({self.polls} polls, {self.reads} reads, "
            f"{self.throttled} throttled)"
        )


async def show_following(progress: FollowProgress, *, stream: TextIO, live: bool) -> None:
    """Until cancelled: a live line of the counts by status on a TTY, else a log line every 10 s."""

    def fields() -> dict[str, object]:
        return {
            "total": progress.total,
            **progress.counts(),
            "polls": progress.polls,
            "reads": progress.reads,
            "throttled": progress.throttled,
        }

    await _show(progress.line, "following", fields, stream=stream, live=live)
