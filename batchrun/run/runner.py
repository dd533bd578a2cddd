"""One `batchrun run`: token first, then the scheduler, the report, signals and the summary."""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from batchrun.arm.auth import TokenProvider
from batchrun.arm.retry import RetrySettings
from batchrun.arm.session import open_client
from batchrun.arm.transport import Timeouts
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
class BatchSettings:
    """The settings of one ``batchrun run`` batch (a "run" is one pipeline run inside it).

    Built once, at the CLI, from the flags; each default is the flag's default.
    """

    report: Path
    """The JSONL report (``--report``); its intent journal lives beside it. No default here: the
    CLI names one per invocation, so two batches never share a report by accident."""

    endpoint: str
    """The management endpoint URL, no trailing path (``--endpoint``, ``$BATCHRUN_ENDPOINT``,
    else the cloud's); ``http://`` only for loopback, checked before it gets here."""

    resume: bool = False
    """Append to ``report`` and skip the runs whose last line there succeeded (``--resume``);
    the journal then says which runs may have been created without an answer."""

    concurrency: int = 16
    """createRun requests in flight at once, and the session's connection limit
    (``--concurrency``). The write *rate* is paced per subscription regardless; this only bounds
    how many answers are awaited together, so 16 keeps a laptop's sockets modest."""

    retry: RetrySettings = field(default_factory=RetrySettings)
    """Attempts per run and the time budget for them, for transient failures (429, 5xx, lost
    answers): ``--max-attempts`` (8), ``--max-retry-time`` (600 s)."""

    timeouts: Timeouts = field(default_factory=Timeouts)
    """Seconds per TCP+TLS connect (``--connect-timeout``, 10) and per wait for response bytes
    (``--read-timeout``, 60); a read timeout makes the answer count as lost, not failed."""

    grace_s: float = 30.0
    """Seconds in-flight requests may take to finish after the first SIGINT/SIGTERM (``--grace``)
    before they are cancelled: long enough for a createRun answer, short enough for a container
    runtime's kill timeout."""

    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    """After a lost answer, how long (``--reconcile-window``, 30 s) to look for the run in ADF
    before posting again, so a run is never triggered twice."""

    shard: str | None = None
    """``K/N`` when only a slice of the manifest runs (``--shard``); recorded in the journal so
    a resume of another slice is refused. ``None``: the whole manifest."""


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


def resumption(manifest: Manifest, settings: BatchSettings, identity: BatchIdentity) -> Resumption:
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
    manifest: Manifest, settings: BatchSettings, *, tokens: TokenProvider
) -> BatchOutcome:
    """Trigger every run of ``manifest`` once, write the report, and say how it went.

    1. With ``settings.resume``, read the earlier report and journal: skip what succeeded, and
       remember the runs that may exist without an answer (ReportError if there is nothing to
       resume).
    2. Ask for a token and open the client: no token, AuthError, and nothing sent or written.
    3. Open the report and its intent journal, and hand the runs to the :class:`Scheduler`
       (pacing, retries, reconciliation), a line per run as each finishes.
    4. On SIGINT/SIGTERM stop taking runs, give those in flight ``grace_s``, then cancel; a
       second signal cancels at once.

    Returns the counts, the signal that stopped the batch, and the 401 that stopped it, if any;
    the CLI turns those into an exit code.
    """
    identity = BatchIdentity(manifest.fingerprint, manifest.path, settings.shard)
    resumed = resumption(manifest, settings, identity)
    progress = Progress(total=len(resumed.todo))
    async with open_client(
        endpoint=settings.endpoint,
        tokens=tokens,
        timeouts=settings.timeouts,
        connections=settings.concurrency,
    ) as client:
        with (
            ReportWriter.open(settings.report, resume=settings.resume) as writer,
            Journal.open(settings.report, identity, resume=settings.resume) as journal,
        ):
            scheduler = Scheduler(
                trigger=client,
                writer=writer,
                settings=SchedulerSettings(
                    concurrency=settings.concurrency,
                    retry=settings.retry,
                    reconcile=settings.reconcile,
                ),
                progress=progress,
                reader=client,
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
