"""Stopping a batch: on SIGINT, SIGTERM or SIGHUP, or when a line cannot be written.

The first of these stops the scheduler (no new sends; requests on the wire finish and are
written) and gives the runs in flight ``grace_s`` before they are cancelled; a second signal
cancels at once. Whatever ends the batch, every task it started is cancelled and awaited before
the session closes, so nothing fails later on a closed session and prints a traceback.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import TYPE_CHECKING, Protocol

from batchrun.log import get_logger
from batchrun.run.progress import Progress, show_progress

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterable

    from batchrun.errors import WriteError
    from batchrun.model import RunSpec

__all__ = ["STOP_SIGNALS", "Stopper"]

_log = get_logger("batchrun.run.stopper")

# SIGHUP too: a closed terminal or session must drain like a stop, not kill mid-request
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Batch(Protocol):
    """What triggers the runs: the :class:`~batchrun.run.scheduler.Scheduler`, or the
    :class:`~batchrun.run.dependencies.DependencyDriver` around it."""

    def run(self, todo: Iterable[RunSpec], /) -> Awaitable[None]: ...

    def stop(self) -> None: ...


class Stopper:
    """Runs the scheduler until it ends, or stops it: on a signal, or on the first line that
    cannot be written (the same way: no new sends, in-flight runs drained for ``grace_s``)."""

    def __init__(self, scheduler: Batch, progress: Progress, *, grace_s: float) -> None:
        self._scheduler = scheduler
        self._progress = progress
        self._grace_s = grace_s
        self._work: asyncio.Future[None] | None = None
        self._signals: list[signal.Signals] = []
        self._deadline: asyncio.TimerHandle | None = None
        self.write_failure: WriteError | None = None

    @property
    def first_signal(self) -> signal.Signals | None:
        """The first signal received: it decides the exit code, whatever came after it."""
        return self._signals[0] if self._signals else None

    async def run(self, todo: Iterable[RunSpec]) -> None:
        loop = asyncio.get_running_loop()
        before = asyncio.all_tasks()
        self._work = work = asyncio.ensure_future(self._scheduler.run(todo))
        shower = asyncio.ensure_future(
            show_progress(self._progress, stream=sys.stderr, live=sys.stderr.isatty())
        )
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            await work
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        finally:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)
            if self._deadline is not None:
                self._deadline.cancel()
            shower.cancel()
            await _end_tasks(asyncio.all_tasks() - before)

    @property
    def _stopping(self) -> bool:
        return bool(self._signals) or self.write_failure is not None

    def _on_signal(self, signum: signal.Signals) -> None:
        self._signals.append(signum)
        if len(self._signals) == 1 and self.write_failure is None:
            _log.warning(
                "stopping",
                signal=signum.name,
                grace_s=self._grace_s,
                in_flight=self._progress.in_flight,
            )
            self._stop()
        else:
            _log.warning("stopping now", signal=signum.name)
            if self._work is not None:
                self._work.cancel()

    def on_write_failure(self, error: WriteError) -> None:
        """The first line that could not be written: stop sending, as on a signal."""
        if self.write_failure is not None:
            return
        self.write_failure = error
        _log.error(
            "stopping: a line cannot be written",
            path=error.path,
            reason=error.reason,
            grace_s=self._grace_s,
            in_flight=self._progress.in_flight,
        )
        if not self._signals:
            self._stop()

    def _stop(self) -> None:
        self._scheduler.stop()
        if self._work is not None:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(self._grace_s, self._work.cancel)


async def _end_tasks(tasks: set[asyncio.Task[object]]) -> None:
    """Cancel and await every task the batch started that is still running, before the
    session closes: a task left behind would fail later on the closed session, and print a
    traceback ("Task exception was never retrieved") into the JSON log."""
    for task in tasks:
        task.cancel()
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, Exception):
            _log.error("a task failed while stopping", error=repr(outcome))
