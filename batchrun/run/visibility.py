"""How long ADF takes to list a run we created, measured on this batch's own runs.

``queryPipelineRuns`` is not read-your-writes: a run just created may be missing from queries
for a while. Reconciliation must look for a lost answer's run at least that long, or it would
post the run again and trigger it twice. ADF does not say how long; so it is measured. Runs this
batch created (their runId came back) are *samples*; the shared reads that reconciliation makes
anyway list them, and the time from a sample's createRun answer to the answer of the first read
that lists it bounds its lag from above.

The window is the ``percentile`` of those bounds times ``factor``, never below ``floor_s`` and
never above the ceiling (``--reconcile-window``); with fewer than ``min_samples`` bounds it is the
ceiling. A bound counts only when it is tight: the read that first listed the sample was answered
within ``resolution_s`` of the later of the sample's creation and the previous read of its
pipeline (a run first read minutes after it was made says only that its lag was under minutes).

Should ADF slow down, the samples show it first: while a sample of a pipeline being read is still
missing from a read sent longer than the window after its creation, the window is the ceiling
again, at once, for every run waiting on it. And a run waiting on a pipeline is held to the
learned window only when a sample of that pipeline created at most one window before its lost
answer was listed within the window: fresh evidence that ADF was quick at the time. Without it
(the pipeline was quiet) the run waits the ceiling.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Collection

# subscription, resource group, factory, pipeline: casefolded, as ADF compares names
SampleKey = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class WindowRule:
    """How the visibility window is derived from the measured lags."""

    percentile: float = 0.95
    """The share of measured lags the window must cover before the safety factor (0.95)."""
    factor: float = 1.25
    """The safety factor on that percentile (1.25). Each lag is already an upper bound (a read
    answered after the run appeared), so the factor covers a lag longer than any seen so far."""
    floor_s: float = 1.0
    """Seconds the window never goes under (1): a handful of samples all read at once must not
    shrink it to nothing."""
    min_samples: int = 20
    """Lags measured before the window is trusted (20); until then it is the ceiling."""
    resolution_s: float = 2.0
    """How loose a lag may be and still count (2 s): see the module's docstring."""
    pending: int = 256
    """Samples awaiting their first read at most; runs created meanwhile are not sampled."""
    kept: int = 200
    """The most recent lags the percentile is taken over: an old calm hour does not outvote a
    slow last minute."""


@dataclass(frozen=True, slots=True)
class Window:
    """The window in force: how long after an ambiguous answer its run may still be unlisted."""

    seconds: float
    samples: int
    learned: bool
    """False: the ceiling, because too few lags were measured or a sample is overdue."""

    def describe(self) -> str:
        if self.learned:
            return f"visibility window {self.seconds:.1f} s, learned from {self.samples} runs"
        return f"visibility window {self.seconds:.1f} s (the ceiling; {self.samples} runs measured)"


@dataclass(slots=True)
class _Sample:
    key: SampleKey
    run_id: str
    created: float
    overdue: bool = False


class VisibilityLag:
    """Samples of our own runs, the lags measured on them, and the window they give.

    Times are the caller's monotonic clock, passed in: nothing here reads a clock or sleeps.
    """

    def __init__(self, *, ceiling_s: float, rule: WindowRule | None = None) -> None:
        self._ceiling = ceiling_s
        self._rule = rule or WindowRule()
        self._lags: deque[float] = deque(maxlen=self._rule.kept)
        self._pending: dict[SampleKey, dict[str, _Sample]] = {}
        self._order: deque[_Sample] = deque()
        self._last_read: dict[SampleKey, float] = {}
        self._confirmed: dict[SampleKey, float] = {}  # the latest sample listed within the window
        self._live = 0
        self._overdue = 0
        self._learned: float | None = None

    @property
    def window(self) -> Window:
        learned = self._learned is not None and not self._overdue
        seconds = self._learned if learned and self._learned is not None else self._ceiling
        return Window(seconds=seconds, samples=len(self._lags), learned=learned)

    def seconds_for(self, key: SampleKey, *, lost_at: float) -> float:
        """The window for a run of ``key`` whose answer was lost at ``lost_at``: the learned one
        when a sample of ``key`` made since ``lost_at`` less that window was listed in time."""
        window = self.window
        fresh = self._confirmed.get(key, -math.inf) >= lost_at - window.seconds
        return window.seconds if window.learned and fresh else self._ceiling

    def created(self, key: SampleKey, run_id: str, *, at: float) -> None:
        """A run of ours whose createRun answer came at ``at``: a sample, while there is room."""
        self._expire(at)
        if self._live >= self._rule.pending:
            return
        sample = _Sample(key, run_id, at)
        self._pending.setdefault(key, {})[run_id] = sample
        self._order.append(sample)
        self._live += 1

    def read(
        self,
        key: SampleKey,
        listed: Collection[str],
        *,
        sent: float,
        answered: float,
        covers_from: float,
    ) -> None:
        """A read of ``key``'s runs, sent and answered at these times, listed ``listed``; it held
        every run created since ``covers_from``."""
        previous = self._last_read.get(key, -math.inf)
        self._last_read[key] = sent
        pending = self._pending.get(key)
        if pending:
            seen = [pending.pop(run_id) for run_id in listed if run_id in pending]
            for sample in seen:
                self._forget(sample)
                lag = max(0.0, answered - sample.created)
                if (
                    sample.overdue
                    or answered - max(sample.created, previous) <= self._rule.resolution_s
                ):
                    self._lags.append(lag)
            self._learned = self._derive()
            window = self.window.seconds
            in_time = [sample.created for sample in seen if answered - sample.created <= window]
            if in_time:
                self._confirmed[key] = max(self._confirmed.get(key, -math.inf), *in_time)
            for sample in pending.values():
                if (
                    not sample.overdue
                    and sample.created >= covers_from
                    and sent - sample.created > window
                ):
                    sample.overdue = True
                    self._overdue += 1
            if not pending:
                del self._pending[key]
        self._learned = self._derive()
        self._expire(answered)

    def _derive(self) -> float | None:
        rule = self._rule
        if len(self._lags) < rule.min_samples:
            return None
        ordered = sorted(self._lags)
        high = ordered[min(len(ordered) - 1, math.ceil(rule.percentile * len(ordered)) - 1)]
        return min(self._ceiling, max(rule.floor_s, high * rule.factor))

    def _expire(self, now: float) -> None:
        """Samples never listed within twice the ceiling: their pipeline is not being read (or
        ADF lost them); they must not hold the room for new ones, nor the window at the ceiling
        after every waiting run has given up anyway."""
        horizon = now - 2 * self._ceiling
        while self._order and (self._order[0].created < horizon or self._order[0].run_id == ""):
            sample = self._order.popleft()
            if sample.run_id:
                pending = self._pending.get(sample.key, {})
                pending.pop(sample.run_id, None)
                self._forget(sample)
                if not pending:
                    self._pending.pop(sample.key, None)

    def _forget(self, sample: _Sample) -> None:
        self._live -= 1
        if sample.overdue:
            self._overdue -= 1
        # removed from _order lazily: a blank id marks it for _expire
        sample.run_id = ""
