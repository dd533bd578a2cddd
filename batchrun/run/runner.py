"""One `batchrun run`: the lock, token first, then the scheduler, the report, signals.

A manifest with ``needs`` runs through the :class:`~batchrun.run.dependencies.DependencyDriver`
(the scheduler and the monitor side by side); one without runs through the scheduler alone.
"""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batchrun.arm.retry import RetrySettings
from batchrun.arm.session import open_client
from batchrun.arm.timeouts import Timeouts
from batchrun.errors import ApiError, ReportError, WriteError
from batchrun.log import get_logger
from batchrun.report.reader import read_records
from batchrun.report.writer import ReportWriter
from batchrun.run.constants import TALLIED_RUNS
from batchrun.run.following import FollowSettings
from batchrun.run.journal import BatchIdentity, Journal, journal_path, read_intents
from batchrun.run.lock import BatchLock
from batchrun.run.progress import FollowProgress, Progress
from batchrun.run.reconcile import RECONCILE_FAILED, ReconcileSettings
from batchrun.run.scheduler import Scheduler, SchedulerSettings
from batchrun.run.stopper import Batch, Stopper
from batchrun.times import utc_now

if TYPE_CHECKING:
    import signal
    from collections.abc import Callable, Iterator, Sequence
    from datetime import datetime
    from pathlib import Path

    from batchrun.arm.auth import TokenProvider
    from batchrun.arm.client import RunReader
    from batchrun.manifest.loader import Manifest
    from batchrun.model import RunSpec
    from batchrun.report.summary import Tally
    from batchrun.run.missing import OnlyMissing, Search
    from batchrun.run.monitor import FollowResult, Sleep
    from batchrun.times import Now

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

    only_missing: OnlyMissing | None = None
    """``--only-missing [--since T]``: before sending, leave out (a ``skipped`` line with the
    existing runId) every run ADF already ran to success since T. ``None``: trigger every run."""

    wait: bool = False
    """``--wait``: every triggered run is followed from its trigger line, while the rest are
    still triggered (with ``needs`` as well: not only the needed ones)."""

    follow: FollowSettings = field(default_factory=FollowSettings)
    """How needed runs are followed (``--poll``, ``--timeout``, ``--on-timeout``)."""


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    progress: Progress
    already_succeeded: int
    auth_error: ApiError | None
    signal: signal.Signals | None
    only_missing: Search | None = None
    """What ``--only-missing`` found, and the reads it took; ``None`` without the flag."""
    write_failure: WriteError | None = None
    """The first line that could not be written to the report or journal: the batch stopped."""
    unwritten: int = 0
    """Runs that ended after that failure, or with it, and have no line: their intents are in
    the journal, so ``--resume`` looks for them in ADF before sending anything."""
    followed: FollowResult | None = None
    """With ``needs``: how the runs followed along the way ended."""
    undecided: int = 0
    """With ``needs``: dependents left without a line (stopped before their needs ended)."""
    tally: Tally | None = None
    """Every line of the report, tallied as it was written (see
    :meth:`~batchrun.report.writer.ReportWriter.tally`); ``None``: read the report back."""

    @property
    def stopped(self) -> bool:
        """The batch was cut short (a signal, a rejected token, a line it could not write)."""
        return (
            self.signal is not None or self.auth_error is not None or self.write_failure is not None
        )


@dataclass(frozen=True, slots=True)
class Resumption:
    """What an earlier report and its journal say about a batch being resumed."""

    todo: list[RunSpec]
    already_succeeded: int
    claimed: set[str]
    intents: dict[str, datetime]
    earlier: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The last line of each run not in ``todo`` that ``keep`` asked for (a needed run)."""


class HandedRuns:
    """A manifest's runs, handed to :func:`run_batch` once: the runner takes them out.

    Held through a whole batch, 100,000 loaded runs are ~80 MB of RSS. The CLI hands them over
    instead of keeping the :class:`Manifest`, and the runner passes them on one by one, so a run
    is freed when it has ended, not when the batch does.
    """

    __slots__ = ("_runs", "fingerprint", "needs", "path")

    def __init__(self, manifest: Manifest) -> None:
        self.path = manifest.path
        self.fingerprint = manifest.fingerprint
        self.needs = manifest.needs
        self._runs: list[RunSpec] | None = list(manifest.runs)

    def take(self) -> list[RunSpec]:
        """The runs, once; a second take is a bug (the first may have freed them)."""
        runs, self._runs = self._runs, None
        if runs is None:
            raise RuntimeError("HandedRuns.take: the runs were already taken")
        return runs


def resumption(
    runs: Sequence[RunSpec],
    settings: BatchSettings,
    identity: BatchIdentity,
    *,
    keep: Callable[[str], bool] | None = None,
) -> Resumption:
    """The runs still to trigger; for a resumed report, the runs it already has (and, of those
    ``keep`` names, their last lines).

    Refuses, before anything is created: a new batch where a report or journal already is; a
    resume of a report whose journal is missing or of another manifest. ``--resume`` with
    neither report nor journal starts a new batch (saying so).
    """
    report, journal = settings.report, journal_path(settings.report)
    fresh = Resumption(list(runs), 0, set(), {})
    if not settings.resume:
        _refuse_leftovers(report, journal)
        return fresh
    if not journal.exists():
        if _has_records(report):
            raise ReportError(
                f"{report}: cannot be resumed: its intent journal {journal} is missing, and only "
                "the journal says which manifest the report was written for (run ids alone could "
                "match another manifest's, whose runs would then be skipped as already "
                "succeeded); restore the journal, or start a new report (another --report)"
            )
        _log.warning("nothing to resume: starting a new batch", report=str(report))
        return fresh
    intents = read_intents(journal, identity)
    succeeded: dict[str, str] = {}
    kept: dict[str, dict[str, Any]] = {}
    for record in read_records(settings.report):
        run_id, status = record.get("id"), record.get("status")
        if not isinstance(run_id, str):
            continue
        if keep is not None and keep(run_id):
            kept[run_id] = record
        # a run --only-missing found already succeeded in ADF is as done as one triggered
        done = status == "succeeded" or (
            status == "skipped" and record.get("already_succeeded") is True
        )
        if done and isinstance(record.get("run_id"), str):
            succeeded[run_id] = record["run_id"]
            continue
        succeeded.pop(run_id, None)
        error = record.get("error") or {}
        if error.get("code") != RECONCILE_FAILED:
            # the run ended with an answer (or was looked for in vain): nothing to look for
            intents.pop(run_id, None)
    todo = [spec for spec in runs if spec.id not in succeeded]
    earlier = {run_id: kept[run_id] for run_id in succeeded.keys() & kept.keys()}
    return Resumption(todo, len(runs) - len(todo), set(succeeded.values()), intents, earlier)


def _refuse_leftovers(report: Path, journal: Path) -> None:
    # checked before either file is created, so a refusal leaves nothing behind to trip on
    if report.exists():
        raise ReportError(
            f"{report}: report already exists; pass --resume to continue it, "
            "or choose another path with --report"
        )
    if journal.exists():
        raise ReportError(
            f"{journal}: the intent journal of an earlier batch on this report is here, though "
            "the report is not: that batch stopped before its first line, and runs it sent may "
            f"exist; pass --resume --report {report} to continue it (those runs are looked for "
            "in ADF first), or choose another --report"
        )


def _has_records(report: Path) -> bool:
    return next(iter(read_records(report)), None) is not None


async def run_batch(
    manifest: HandedRuns,
    settings: BatchSettings,
    *,
    tokens: TokenProvider,
    now: Now = utc_now,
    sleep: Sleep = asyncio.sleep,
) -> BatchOutcome:
    """Trigger every run of ``manifest`` once, write the report, and say how it went. The runs
    are taken out of ``manifest``: each is freed once it has ended.

    1. Lock the report (:class:`~batchrun.run.lock.BatchLock`) for the whole batch: another
       process on it means ReportError, naming that process.
    2. With ``settings.resume``, read the earlier report and journal: skip what succeeded, and
       remember the runs that may exist without an answer (nothing to resume: a new batch).
       Without it, a report or journal already there is a ReportError. Nothing is created yet.
    3. Ask for a token and open the client (its connections open meanwhile): no token,
       AuthError, and nothing sent or written.
       With ``settings.only_missing``, ask ADF which runs already succeeded
       (:mod:`batchrun.run.missing`): a search that fails raises, nothing written or sent; the
       runs found get their ``skipped`` line first and are not sent.
    4. Open the journal, then the report, and hand the runs to the :class:`Scheduler`
       (pacing, retries, reconciliation), a line per run as each finishes. With ``needs``,
       through the :class:`~batchrun.run.dependencies.DependencyDriver`: a dependent is handed
       on once its needs ended ``Succeeded``, followed by the monitor (``now``, ``sleep``: its
       clock), else skipped.
    5. On SIGINT/SIGTERM/SIGHUP, or when a line cannot be written, stop taking runs, give those
       in flight ``grace_s``, then cancel; a second signal cancels at once. Every task the batch
       started is ended before the session closes.

    Returns the counts, the signal or write failure that stopped the batch, and the 401 that
    stopped it, if any; the CLI turns those into an exit code.
    """
    with BatchLock.acquire(settings.report):
        outcome = await _run_locked(manifest, settings, tokens=tokens, now=now, sleep=sleep)
    if outcome.tally is None:
        _free_the_batch()
    return outcome


def _free_the_batch() -> None:
    # the batch's objects hold one another (the writer's on_failure is the stopper's, which
    # holds the scheduler), so they outlive it until a full collection, on top of which the CLI
    # would read the whole report back for its summary. A tallied batch (TALLIED_RUNS at most)
    # is not read back, and a collection of its objects would cost 10-20 ms for a few MB.
    gc.collect()


async def _run_locked(
    manifest: HandedRuns, settings: BatchSettings, *, tokens: TokenProvider, now: Now, sleep: Sleep
) -> BatchOutcome:
    identity = BatchIdentity(manifest.fingerprint, manifest.path, settings.shard)
    needs = manifest.needs
    needed = {need for wanted in needs.values() for need in wanted}
    keep = (lambda _: True) if settings.wait else needed.__contains__
    # with --wait the runs are followed while the batch triggers the rest, as needed runs are
    following = bool(needs) or settings.wait
    resumed = resumption(manifest.take(), settings, identity, keep=keep if following else None)
    progress = Progress(total=len(resumed.todo))
    async with open_client(
        endpoint=settings.endpoint,
        tokens=tokens,
        timeouts=settings.timeouts,
        connections=settings.concurrency,
        # opened while the token is asked for: as many as the first requests will use
        warm=min(settings.concurrency, len(resumed.todo)),
    ) as client:
        # --only-missing asks before the report is opened: a search that fails leaves nothing
        found = await _already_succeeded(client, resumed, settings)
        with (
            Journal.open(settings.report, identity, resume=settings.resume) as journal,
            ReportWriter.open(
                settings.report, resume=settings.resume, tally=len(resumed.todo) <= TALLIED_RUNS
            ) as writer,
        ):
            if found is not None:
                # a run found already succeeded counts as Succeeded for the runs that need it
                for run_id, line in found.leave_out(resumed.todo, writer, progress).items():
                    if following and keep(run_id):
                        resumed.earlier[run_id] = line
                    # that ADF run is this one's: reconciliation must not give it to another
                    resumed.claimed.add(line["run_id"])
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
            batch: Batch = scheduler
            driver = None
            if following:
                # here: a batch without --wait or needs does not import the following
                from batchrun.run.dependencies import DependencyDriver
                from batchrun.run.monitor import Monitor

                monitor = Monitor(
                    client=client,
                    sink=writer,
                    settings=settings.follow,
                    progress=FollowProgress(),
                    now=now,
                    sleep=sleep,
                )
                batch = driver = DependencyDriver(
                    scheduler=scheduler,
                    monitor=monitor,
                    writer=writer,
                    progress=progress,
                    needs=needs,
                    earlier=resumed.earlier,
                    follow_all=settings.wait,
                )
            stopper = Stopper(batch, progress, grace_s=settings.grace_s)
            writer.on_failure = journal.on_failure = stopper.on_write_failure
            await stopper.run(handed_on(resumed.todo))
            tally = writer.tally()
    return BatchOutcome(
        progress=progress,
        already_succeeded=resumed.already_succeeded,
        only_missing=found,
        auth_error=scheduler.auth_failed or (driver.follow_error if driver else None),
        signal=stopper.first_signal,
        write_failure=stopper.write_failure,
        unwritten=writer.unwritten,
        followed=driver.followed if driver else None,
        undecided=driver.undecided if driver else 0,
        tally=tally,
    )


async def _already_succeeded(
    client: RunReader, resumed: Resumption, settings: BatchSettings
) -> Search | None:
    if settings.only_missing is None:
        return None
    from batchrun.run.missing import find_succeeded  # here: only --only-missing searches

    return await find_succeeded(
        client,
        resumed.todo,
        settings=settings.only_missing,
        retry=settings.retry,
        claimed=resumed.claimed,
    )


def handed_on(todo: list[RunSpec]) -> Iterator[RunSpec]:
    """``todo``'s runs in order, each dropped from the list as it is handed on: nothing here
    keeps a run alive once the scheduler is done with it."""
    todo.reverse()
    while todo:
        yield todo.pop()
