"""One `batchrun run`: token first, then the scheduler, the report, signals and the summary."""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from batchrun import __version__
from batchrun.auth import TokenProvider
from batchrun.client import AdfClient, Timeouts, build_session
from batchrun.errors import ApiError
from batchrun.log import get_logger
from batchrun.manifest import Manifest
from batchrun.progress import Progress, show_progress
from batchrun.report import ReportWriter, last_status_by_id
from batchrun.retry import RetrySettings
from batchrun.scheduler import Scheduler, SchedulerSettings
from batchrun.spec import RunSpec

_log = get_logger("batchrun.batch")


@dataclass(frozen=True, slots=True)
class RunSettings:
    report: Path
    endpoint: str
    resume: bool = False
    concurrency: int = 16
    retry: RetrySettings = field(default_factory=RetrySettings)
    timeouts: Timeouts = field(default_factory=Timeouts)
    grace_s: float = 30.0


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    progress: Progress
    already_succeeded: int
    auth_error: ApiError | None
    signal: signal.Signals | None


def pending_runs(manifest: Manifest, report: Path, *, resume: bool) -> tuple[list[RunSpec], int]:
    """The runs still to trigger, and how many a resumed report shows as already succeeded."""
    if not resume:
        return list(manifest.runs), 0
    statuses = last_status_by_id(report)
    todo = [spec for spec in manifest.runs if statuses.get(spec.id) != "succeeded"]
    return todo, len(manifest.runs) - len(todo)


async def run_batch(
    manifest: Manifest, settings: RunSettings, *, tokens: TokenProvider
) -> BatchOutcome:
    todo, done_before = pending_runs(manifest, settings.report, resume=settings.resume)
    # fail before anything is sent when no token can be had (AuthError propagates)
    await tokens.get_token()
    progress = Progress(total=len(todo))
    with ReportWriter.open(settings.report, resume=settings.resume) as writer:
        async with build_session(timeouts=settings.timeouts, limit=settings.concurrency) as session:
            client = AdfClient(
                session=session,
                endpoint=settings.endpoint,
                tokens=tokens,
                user_agent=f"batchrun/{__version__}",
                timeouts=settings.timeouts,
            )
            scheduler = Scheduler(
                trigger=client,
                writer=writer,
                settings=SchedulerSettings(concurrency=settings.concurrency, retry=settings.retry),
                progress=progress,
            )
            received = await _run_with_signals(scheduler, todo, progress, settings.grace_s)
    return BatchOutcome(
        progress=progress,
        already_succeeded=done_before,
        auth_error=scheduler.auth_failed,
        signal=received,
    )


async def _run_with_signals(
    scheduler: Scheduler, todo: list[RunSpec], progress: Progress, grace_s: float
) -> signal.Signals | None:
    loop = asyncio.get_running_loop()
    work = asyncio.ensure_future(scheduler.run(todo))
    shower = asyncio.ensure_future(
        show_progress(progress, stream=sys.stderr, live=sys.stderr.isatty())
    )
    received: list[signal.Signals] = []

    def on_signal(signum: signal.Signals) -> None:
        received.append(signum)
        if len(received) == 1:
            _log.warning(
                "stopping", signal=signum.name, grace_s=grace_s, in_flight=progress.in_flight
            )
            scheduler.stop()
            loop.call_later(grace_s, work.cancel)
        else:
            _log.warning("stopping now", signal=signum.name)
            work.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await work
    except asyncio.CancelledError:
        if not received:
            raise
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        shower.cancel()
        await asyncio.gather(shower, return_exceptions=True)
    return received[0] if received else None
