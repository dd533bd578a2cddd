"""The JSONL report: one line per run, appended and flushed the moment the result is known.

A line is written with a single ``write(2)`` on a file opened ``O_APPEND``, so a crash leaves whole
lines or, at worst, one unterminated tail that readers ignore and a resumed writer terminates
before appending. An existing report is never truncated or rewritten.

When the disk is full (``ENOSPC``) or the file reaches a size limit (``EFBIG``), the line that
failed may be cut short; nothing more is written after it, so the cut line stays the last one, and
the writer tells its ``on_failure`` (the batch stops sending, as on a signal) instead of raising
into the middle of a batch.
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from batchrun.errors import ReportError, WriteError
from batchrun.report.reader import decode_line
from batchrun.report.summary import Tally
from batchrun.times import utc_iso

# json.dumps with arguments builds an encoder for every call: one line a run, built once
_LINE: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# a lone surrogate (an answer's JSON may hold a "\ud800" escape) has no UTF-8: such a line is
# written in JSON's own escapes, which read back as the very same text
_ASCII_LINE: Final = json.JSONEncoder(separators=(",", ":"))

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from pathlib import Path

    from batchrun.model import RunSpec

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

    def __init__(self, path: Path, fd: int, *, what: str) -> None:
        self.path = path
        self.what = what
        self._fd = fd
        self.started_empty = self.empty
        # bytes this appender wrote: with started_empty, the whole file is its while they match
        self.written = 0

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
        appender = cls(path, fd, what=what)
        try:
            appender._terminate_partial_tail()
        except OSError as exc:
            appender.close()
            raise WriteError(path=str(path), reason=_reason(exc), what=what) from None
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

    @property
    def all_mine(self) -> bool:
        """Every byte of the file is a line this appender wrote (none before it, nobody else)."""
        return self.started_empty and os.fstat(self._fd).st_size == self.written

    def append(self, record: dict[str, Any]) -> str:
        """Write ``record`` as one line, and return its JSON text; :class:`WriteError` with the
        OS's reason if it could not be written whole (the file may then end in a cut line)."""
        text = _LINE.encode(record)
        try:
            line = (text + "\n").encode()
        except UnicodeEncodeError:
            text = _ASCII_LINE.encode(record)
            line = (text + "\n").encode()
        rest = memoryview(line)
        # a short write on a regular file means the disk is full or the file at its size limit:
        # writing the rest gets the OS's reason (ENOSPC, EFBIG); each turn writes a byte or more
        for _ in range(len(line)):
            try:
                written = os.write(self._fd, rest)
            except OSError as exc:
                raise WriteError(path=str(self.path), reason=_reason(exc), what=self.what) from None
            if written == 0:
                raise WriteError(path=str(self.path), reason="no byte written", what=self.what)
            self.written += written
            rest = rest[written:]
            if not rest:
                return text
        raise AssertionError("unreachable: every turn writes a byte or raises")

    def close(self) -> None:
        os.close(self._fd)


def _reason(exc: OSError) -> str:
    """``File too large (EFBIG)``: the OS's words, and the name an operator can search for."""
    name = errno.errorcode.get(exc.errno) if exc.errno is not None else None
    return f"{exc.strerror} ({name})" if name else str(exc.strerror or exc)


class ReportWriter:
    """Appends one whole line per result to a report.

    Without ``on_failure``, a line that cannot be written raises :class:`WriteError`. With it,
    the first such failure is handed to ``on_failure`` (the runner stops the batch) and kept in
    :attr:`failure`; that result and every later one are counted in :attr:`unwritten` instead
    of written, so a cut line stays the report's last.
    """

    def __init__(self, file: AppendOnlyJsonl, *, tally: bool = False) -> None:
        self._file = file
        self.path = file.path
        self.on_failure: Callable[[WriteError], None] | None = None
        self.failure: WriteError | None = None
        self.unwritten = 0
        # a new report's lines are all this writer's: tallied as they are written, `run` prints
        # their summary at the end without reading them back (the batch's idle time does the
        # work while it waits on ARM)
        self._tally = Tally() if tally and file.started_empty else None

    @classmethod
    def open(cls, path: Path, *, resume: bool, tally: bool = False) -> ReportWriter:
        """With ``tally``, a new report's lines are tallied as written (:meth:`tally`)."""
        hint = "pass --resume to continue it, or choose another path with --report"
        file = AppendOnlyJsonl.open(path, resume=resume, what="report", exists_hint=hint)
        return cls(file, tally=tally)

    def tally(self) -> Tally | None:
        """The report's lines, tallied as written: what :func:`~batchrun.report.summary.summarize`
        would read back; ``None`` where the report holds a line that is not this writer's (it was
        resumed, or another process appended to it) or a line failed. Taken before closing."""
        if self._tally is None or self.failure is not None or not self._file.all_mine:
            return None
        return self._tally

    def write(self, result: RunResult) -> None:
        self.append(result.to_record())

    def append(self, record: dict[str, Any]) -> None:
        """One line as it is (an outcome line of a followed run), failing as :meth:`write`."""
        if self.failure is not None:
            self.unwritten += 1
            return
        try:
            text = self._file.append(record)
        except WriteError as exc:
            if self.on_failure is None:
                raise
            self.failure = exc
            self.unwritten += 1
            self.on_failure(exc)
            return
        if self._tally is not None:
            # as the line reads back: a summary of the file would see exactly this
            self._tally.add(decode_line(text))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
