"""The intent journal beside a report: what was about to be sent, written before it is sent.

``<report>.journal`` is JSONL. Its first line names the batch it belongs to::

    {"type": "batch", "fingerprint": "…", "manifest": "nightly.yaml", "shard": null, …}

and every run gets an intent line *before* its first createRun leaves::

    {"type": "intent", "id": "sales-eu", "request_id": "…", "at": "2026-11-26T02:00:00.123Z"}

A result line in the report supersedes the intent. An intent with no ``succeeded`` result means
the process died, or gave up, while the run may have been created: ``--resume`` asks ADF about it
(from the intent's time on) before posting again. Lines are whole single writes to an
``O_APPEND`` file, like the report's; ``fsync`` is not called (a killed process loses nothing, a
machine that loses power may lose the page cache).

The batch line is what makes a report resumable: without it (or without the journal) nothing
says which manifest the report's ids belong to, and ids alone could match another manifest's.
An intent that cannot be written stops the batch, and its run is not sent: a run may leave only
once its intent is on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batchrun import __version__
from batchrun.arm.pacing import PacerClosed
from batchrun.errors import ReportError, WriteError
from batchrun.report.reader import read_records
from batchrun.report.writer import AppendOnlyJsonl
from batchrun.times import parse_time, utc_iso

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from pathlib import Path


def journal_path(report: Path) -> Path:
    return report.with_name(report.name + ".journal")


@dataclass(frozen=True, slots=True)
class BatchIdentity:
    """What a resumed report must have been written for."""

    fingerprint: str
    manifest: str
    shard: str | None

    def line(self) -> dict[str, Any]:
        """The journal's first line."""
        return {
            "type": "batch",
            "fingerprint": self.fingerprint,
            "manifest": self.manifest,
            "shard": self.shard,
            "batchrun": __version__,
        }


class JournalClosed(PacerClosed):
    """An intent could not be written: the batch is stopping, and this run must not be sent.

    A :class:`PacerClosed`, so the scheduler treats it as it treats any stop: the run ends
    without a line, and ``--resume`` sends it."""


def read_intents(path: Path, identity: BatchIdentity) -> dict[str, datetime]:
    """The earliest intent time of each manifest entry (by ``RunSpec.id``); refuses a journal
    of another batch, and one (or none) that does not start with its batch line."""
    intents: dict[str, datetime] = {}
    records = read_records(path)
    first = next(records, None)
    if first is None or first.get("type") != "batch":
        raise ReportError(_no_batch_line(path))
    if (first.get("fingerprint"), first.get("shard")) != (identity.fingerprint, identity.shard):
        raise ReportError(
            f"{path}: this report was written for another manifest "
            f"({first.get('manifest')}, shard {first.get('shard')}) or the manifest "
            "has changed since (runs, parameters or environment variables); "
            "resume it with the same manifest, or start a new report"
        )
    for line in records:
        if line.get("type") != "intent":
            continue
        spec_id, at = line.get("id"), line.get("at")
        if isinstance(spec_id, str) and isinstance(at, str) and spec_id not in intents:
            moment = parse_time(at)
            if moment is None:
                raise ReportError(f"{path}: intent of {spec_id} has no valid time: {at!r}")
            intents[spec_id] = moment
    return intents


def _no_batch_line(path: Path) -> str:
    return (
        f"{path}: this intent journal has no batch line, so nothing says which manifest its "
        "report was written for; resuming on run ids alone could skip another manifest's runs "
        "as already succeeded. Start a new report (another --report); `batchrun summary` on the "
        "old one shows what it triggered"
    )


class Journal:
    """The open intent journal of one batch: a line per run, written before its first send."""

    def __init__(self, file: AppendOnlyJsonl) -> None:
        self._file = file
        self.on_failure: Callable[[WriteError], None] | None = None
        self.failure: WriteError | None = None

    @classmethod
    def open(cls, report: Path, identity: BatchIdentity, *, resume: bool) -> Journal:
        hint = "pass --resume to continue that batch, or choose another --report"
        path = journal_path(report)
        file = AppendOnlyJsonl.open(path, resume=resume, what="intent journal", exists_hint=hint)
        if file.empty:
            try:
                file.append(identity.line())
            except WriteError:
                # a journal without its batch line would block every later run on this report
                file.close()
                path.unlink(missing_ok=True)
                raise
        return cls(file)

    def intent(self, *, spec_id: str, client_request_id: str, at: datetime) -> None:
        """Written before the first createRun of the manifest entry ``spec_id`` leaves.

        When it cannot be written, with ``on_failure`` set: that hears of the first failure (and
        stops the batch), and :class:`JournalClosed` keeps this run from being sent."""
        if self.failure is not None:
            raise JournalClosed
        try:
            self._file.append(
                {"type": "intent", "id": spec_id, "request_id": client_request_id,
                 "at": utc_iso(at)}
            )  # fmt: skip
        except WriteError as exc:
            if self.on_failure is None:
                raise
            self.failure = exc
            self.on_failure(exc)
            raise JournalClosed from None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
