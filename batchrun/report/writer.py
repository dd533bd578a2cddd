"""The JSONL report: one line per run, appended and flushed the moment the result is known.

A line is written with a single ``write(2)`` on a file opened ``O_APPEND``, so a crash leaves whole
lines or, at worst, one unterminated tail that readers ignore and a resumed writer terminates
before appending. An existing report is never truncated or rewritten.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from batchrun.errors import ReportError
from batchrun.model import RunSpec
from batchrun.times import utc_iso

Status = Literal["succeeded", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class RunResult:
    spec: RunSpec
    status: Status
    started_at: datetime
    finished_at: datetime
    attempts: int
    run_id: str | None = None
    http_status: int | None = None
    error: dict[str, Any] | None = None
    request_id: str | None = None
    correlation_id: str | None = None
    reconciled: bool = False
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ms(self) -> int:
        return round((self.finished_at - self.started_at).total_seconds() * 1000)

    def to_record(self) -> dict[str, Any]:
        spec = self.spec
        record: dict[str, Any] = {
            "id": spec.id,
            "subscription": spec.subscription,
            "resource_group": spec.resource_group,
            "factory": spec.factory,
            "pipeline": spec.pipeline,
            "status": self.status,
            "run_id": self.run_id,
            "attempts": self.attempts,
            "http_status": self.http_status,
            "error": self.error,
            "request_id": self.request_id,
            "correlation_id": self.correlation_id,
            "started_at": utc_iso(self.started_at),
            "finished_at": utc_iso(self.finished_at),
            "duration_ms": self.duration_ms,
        }
        if self.reconciled:
            record["reconciled"] = True
        if self.reason is not None:
            record["reason"] = self.reason
        record.update(self.extra)
        return record


class AppendOnlyJsonl:
    """A JSONL file that only ever grows by whole lines; never truncated or rewritten."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def open(cls, path: Path, *, resume: bool, what: str, exists_hint: str) -> AppendOnlyJsonl:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (0 if resume else os.O_EXCL)
        try:
            fd = os.open(path, flags, 0o644)
        except FileExistsError:
            raise ReportError(f"{path}: {what} already exists; {exists_hint}") from None
        except OSError as exc:
            raise ReportError(
                f"{path}: cannot open the {what} for writing: {exc.strerror}"
            ) from None
        appender = cls(path, fd)
        appender._terminate_partial_tail()
        return appender

    @property
    def empty(self) -> bool:
        return os.fstat(self._fd).st_size == 0

    def _terminate_partial_tail(self) -> None:
        # a killed writer may have left half a line: end it so the next line stands alone
        if self.empty:
            return
        with self.path.open("rb") as existing:
            existing.seek(-1, os.SEEK_END)
            if existing.read(1) != b"\n":
                os.write(self._fd, b"\n")

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        written = os.write(self._fd, line)
        if written != len(line):
            # a short write on a regular file means the disk is full: say so rather than go on
            raise ReportError(f"{self.path}: short write ({written} of {len(line)} bytes)")

    def close(self) -> None:
        os.close(self._fd)


class ReportWriter:
    """Appends one whole line per result to a report."""

    def __init__(self, file: AppendOnlyJsonl) -> None:
        self._file = file
        self.path = file.path

    @classmethod
    def open(cls, path: Path, *, resume: bool) -> ReportWriter:
        hint = "pass --resume to continue it, or choose another path with --report"
        return cls(AppendOnlyJsonl.open(path, resume=resume, what="report", exists_hint=hint))

    def write(self, result: RunResult) -> None:
        self._file.append(result.to_record())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
