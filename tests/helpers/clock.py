"""Time that passes only when the code under test sleeps (or a test moves it).

:class:`FakeTime` is the clock and the sleep to inject wherever batchrun takes them (``clock=``,
``sleep=``, ``now=``). It reads the emulator's :class:`ManualClock`, so a test that serves the
emulator in-process can hand both the same clock: the client's waits then move the emulator's
time too, and nothing really sleeps.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from batchrun.emulator.clock import ManualClock


@dataclass
class FakeTime:
    clock: ManualClock = field(default_factory=ManualClock)
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def time(self) -> float:
        """Wall-clock seconds since the epoch, as ``time.time``."""
        return self.clock.time()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.time(), UTC)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    async def sleep(self, seconds: float) -> None:
        """Record the wait and move the clock past it; yield once, as a real sleep would."""
        self.slept.append(seconds)
        # asyncio.sleep treats a negative delay as zero; so does this one
        self.clock.advance(max(0.0, seconds))
        await asyncio.sleep(0)
