"""One `batchrun run`: token first, then the scheduler, the report, signals and the summary."""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from batchrun import __version__
from batchrun.arm.auth import TokenProvider
from batchrun.arm.client import AdfClient, Timeouts, build_session
from batchrun.arm.retry import RetrySettings
from batchrun.errors import ApiError, ReportError
from batchrun.log import get_logger
from batchrun.manifest.loader import Manifest
from batchrun.model import RunSpec
from batchrun.report.reader import read_records
from batchrun.report.writer import ReportWriter
from batchrun.run.journal import BatchIdentity, Journal, journal_path, read_intents
from batchrun.run.progress import Progress, show_progress
from batchrun.run.reconcile import RECONCILE_FAILED, ReconcileSettings
from batchrun.run.scheduler import Scheduler, SchedulerSettings

_log = get_logger("batchrun.run.runner")


@dataclass(frozen=True, slots=True)
class RunSettings:
    report: Path
    endpoint: str
    resume: bool = False
    concurrency: int = 16
    retry: RetrySettings = field(default_factory=RetrySettings)
    timeouts: Timeouts = field(default_factory=Timeouts)
    grace_s: float = 30.0
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    shard: str | None = None


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    progress: Progress
    already_succeeded: int
    auth_error: ApiError | None
    signal: signal.Signals | None


@dataclass(frozen=True, slots=True)
class Resumption:
    """What an earlier report and its journal say about a batch being resumed."""

    todo: list[RunSpec]
    already_succeeded: int
    claimed: set[str]
    intents: dict[str, datetime]


def resumption(manifest: Manifest, settings: RunSettings, identity: BatchIdentity) -> Resumption:
    """The runs still to trigger; for a resumed report, the runs it already has."""
    if not settings.resume:
        return Resumption(list(manifest.runs), 0, set(), {})
    journal = journal_path(settings.report)
    if not settings.report.exists() and not journal.exists():
        raise ReportError(f"{settings.report}: no report to resume")
    intents = read_intents(journal, identity)
    succeeded: dict[str, str] = {}
    for record in read_records(settings.report):
        run_id, status = record.get("id"), record.get("status")
        if not isinstance(run_id, str):
            continue
        if status == "succeeded" and isinstance(record.get("run_id"), str):
            succeeded[run_id] = record["run_id"]
            continue
        succeeded.pop(run_id, None)
        error = record.get("error") or {}
        if error.get("code") != RECONCILE_FAILED:
            # the run ended with an answer (or was looked for in vain): nothing to look for
            intents.pop(run_id, None)
    todo = [spec for spec in manifest.runs if spec.id not in succeeded]
    return Resumption(todo, len(manifest.runs) - len(todo), set(succeeded.values()), intents)


async def run_batch(
    manifest: Manifest, settings: RunSettings, *, tokens: TokenProvider
) -> BatchOutcome:
    identity = BatchIdentity(manifest.fingerprint, manifest.path, settings.shard)
    resumed = resumption(manifest, settings, identity)
    # fail before anything is sent when no token can be had (AuthError propagates)
    await tokens.get_token()
    progress = Progress(total=len(resumed.todo))
    with (
        ReportWriter.open(settings.report, resume=settings.resume) as writer,
        Journal.open(settings.report, identity, resume=settings.resume) as journal,
    ):
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
                settings=SchedulerSettings(
                    concurrency=settings.concurrency,
                    retry=settings.retry,
                    reconcile=settings.reconcile,
                ),
                progress=progress,
                queries=client,
                journal=journal,
                intents=resumed.intents,
                claimed=resumed.claimed,
            )
            received = await _run_with_signals(scheduler, resumed.todo, progress, settings.grace_s)
    return BatchOutcome(
        progress=progress,
        already_succeeded=resumed.already_succeeded,
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
