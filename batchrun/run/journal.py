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
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from batchrun import __version__
from batchrun.errors import ReportError
from batchrun.report.reader import read_records
from batchrun.report.writer import AppendOnlyJsonl
from batchrun.times import parse_time, utc_iso


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


def read_intents(path: Path, identity: BatchIdentity) -> dict[str, datetime]:
    """The earliest intent time of each manifest entry (by ``RunSpec.id``); refuses a journal
    of another batch."""
    intents: dict[str, datetime] = {}
    for line in read_records(path):
        kind = line.get("type")
        if kind == "batch":
            if (line.get("fingerprint"), line.get("shard")) != (
                identity.fingerprint,
                identity.shard,
            ):
                raise ReportError(
                    f"{path}: this report was written for another manifest "
                    f"({line.get('manifest')}, shard {line.get('shard')}) or the manifest "
                    "has changed since (runs, parameters or environment variables); "
                    "resume it with the same manifest, or start a new report"
                )
        elif kind == "intent":
            spec_id, at = line.get("id"), line.get("at")
            if isinstance(spec_id, str) and isinstance(at, str) and spec_id not in intents:
                moment = parse_time(at)
                if moment is None:
                    raise ReportError(f"{path}: intent of {spec_id} has no valid time: {at!r}")
                intents[spec_id] = moment
    return intents


class Journal:
    """The open intent journal of one batch: a line per run, written before its first send."""

    def __init__(self, file: AppendOnlyJsonl) -> None:
        self._file = file

    @classmethod
    def open(cls, report: Path, identity: BatchIdentity, *, resume: bool) -> Journal:
        hint = "pass --resume to continue that batch, or choose another --report"
        file = AppendOnlyJsonl.open(
            journal_path(report), resume=resume, what="intent journal", exists_hint=hint
        )
        if file.empty:
            file.append(identity.line())
        return cls(file)

    def intent(self, *, spec_id: str, client_request_id: str, at: datetime) -> None:
        """Written before the first createRun of the manifest entry ``spec_id`` leaves."""
        self._file.append(
            {"type": "intent", "id": spec_id, "request_id": client_request_id, "at": utc_iso(at)}
        )

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
