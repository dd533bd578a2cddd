"""Seeded fault injection: which fault (if any) hits a request, and how late it answers.

Faults, latency and run outcomes draw from separate ``random.Random`` streams derived from one
seed, so turning latency on does not change which requests fail.
"""

from __future__ import annotations

import enum
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batchrun.emulator.config import Settings


class Fault(enum.Enum):
    NONE = "none"
    FAIL_500 = "fail_500"  # answered before the run is created
    FAIL_503 = "fail_503"
    FAIL_502_HTML = "fail_502_html"
    FAIL_500_AFTER_CREATE = "fail_500_after_create"  # the run exists; the answer says 500
    DROP_AFTER_CREATE = "drop_after_create"  # the run exists; the connection is cut
    GARBLED_AFTER_CREATE = "garbled_after_create"  # the run exists; a 200 without a runId
    STALL_AFTER_CREATE = "stall_after_create"  # the run exists; the answer comes too late

    @property
    def before_create(self) -> bool:
        return self in (Fault.FAIL_500, Fault.FAIL_503, Fault.FAIL_502_HTML)


class FaultInjector:
    def __init__(self, settings: Settings) -> None:
        chances = [(f, float(getattr(settings, f.value))) for f in Fault if f is not Fault.NONE]
        self._table = [(fault, p) for fault, p in chances if p > 0]
        self._latency_s = settings.latency_ms / 1000
        self._jitter_s = settings.jitter_ms / 1000
        self._faults = random.Random(f"{settings.seed}/faults")
        self._latency = random.Random(f"{settings.seed}/latency")
        self._outcomes = random.Random(f"{settings.seed}/outcomes")
        self._failure_rate = settings.run_failure_rate

    def draw(self) -> Fault:
        if not self._table:
            return Fault.NONE
        roll = self._faults.random()
        for fault, probability in self._table:
            if roll < probability:
                return fault
            roll -= probability
        return Fault.NONE

    def latency_s(self) -> float:
        if self._jitter_s <= 0:
            return self._latency_s
        return max(0.0, self._latency_s + self._latency.uniform(-self._jitter_s, self._jitter_s))

    def run_fails(self, rate: float | None = None) -> bool:
        """Whether a new run fails: at ``rate`` (a pipeline's own), else the settings' rate."""
        rate = self._failure_rate if rate is None else rate
        return rate > 0 and self._outcomes.random() < rate
