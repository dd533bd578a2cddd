"""Following the runs of a report to their end: ``batchrun watch`` and ``batchrun run --wait``.

The report is the state: the runs to follow are those whose trigger succeeded and whose end no
line tells yet, so a ``watch`` after a killed ``--wait`` (or a second ``watch``) picks up where
the last one stopped, re-reading each run's state from ADF. Outcome lines are appended to it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from batchrun.arm.session import open_client
from batchrun.errors import ReportError
from batchrun.log import get_logger
from batchrun.report.writer import AppendOnlyJsonl
from batchrun.run.monitor import FollowResult, Monitor
from batchrun.run.outcome import Followed, Verdict, last_lines, to_follow, verdict
from batchrun.run.progress import FollowProgress, show_following
from batchrun.times import utc_now

if TYPE_CHECKING:
    from pathlib import Path

    from batchrun.arm.auth import TokenProvider
    from batchrun.arm.timeouts import Timeouts
    from batchrun.run.following import FollowSettings

_log = get_logger("batchrun.run.watch")


@dataclass(frozen=True, slots=True)
class WatchOutcome:
    followed: int
    result: FollowResult | None
    verdict: Verdict
    signal: signal.Signals | None


async def watch_report(
    report: Path,
    settings: FollowSettings,
    *,
    endpoint: str,
    tokens: TokenProvider,
    timeouts: Timeouts,
) -> WatchOutcome:
    """Follow every run of ``report`` whose end it does not tell yet; append their outcomes.

    SIGINT/SIGTERM stop the following after the reads in flight (``signal`` says which).
    """
    last = last_lines(report)
    if not last and not report.exists():  # noqa: ASYNC240 (once, before anything is sent)
        raise ReportError(f"{report}: no such report to follow")
    runs = to_follow(last)
    if not runs:
        return WatchOutcome(0, None, verdict(last_lines(report)), None)
    progress = FollowProgress()
    hint = "it is appended to, never replaced"
    sink = AppendOnlyJsonl.open(report, resume=True, what="report", exists_hint=hint)
    try:
        async with open_client(
            endpoint=endpoint, tokens=tokens, timeouts=timeouts, connections=settings.concurrency
        ) as client:
            monitor = Monitor(
                client=client, sink=sink, settings=settings, progress=progress, now=utc_now
            )
            result, received = await _follow_with_signals(monitor, runs, progress)
    finally:
        sink.close()
    return WatchOutcome(len(runs), result, verdict(last_lines(report)), received)


async def _follow_with_signals(
    monitor: Monitor, runs: list[Followed], progress: FollowProgress
) -> tuple[FollowResult, signal.Signals | None]:
    loop = asyncio.get_running_loop()
    received: list[signal.Signals] = []

    def on_signal(signum: signal.Signals) -> None:
        received.append(signum)
        _log.warning("stopping", signal=signum.name, still_followed=progress.total - progress.done)
        monitor.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    shower = asyncio.ensure_future(
        show_following(progress, stream=sys.stderr, live=sys.stderr.isatty())
    )
    try:
        result = await monitor.follow(runs)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        shower.cancel()
        await asyncio.gather(shower, return_exceptions=True)
    return result, received[0] if received else None
