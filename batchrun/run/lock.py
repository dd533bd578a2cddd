"""The batch lock: one process at a time writes a report and sends its runs.

``<report>.lock`` beside the report is held with ``flock(LOCK_EX | LOCK_NB)`` for the whole batch,
from before the report is read for ``--resume`` until its last line is written. Two processes
given the same report (a retried Job while the first still runs, ``kubectl create job
--from=cronjob`` beside the scheduled one) would otherwise both read the same "still to do" list
and trigger each of those runs twice. The holder writes its pid, host and start time into the
file, so the one refused can say who holds it.

The kernel drops the lock when its holder dies, even by ``kill -9``: a lock file left behind is
taken over by the next process, never in the way. The holder unlinks the file as it lets go; a
process that locked a file that was unlinked meanwhile tries again on the new one, so two holders
never hold two different files of the same name.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from batchrun.errors import ReportError
from batchrun.times import utc_iso

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

__all__ = ["BatchLock", "lock_path"]

# each try either holds the file or finds it replaced by a holder that just let go; more than a
# few in a row means something keeps replacing it, and waiting longer would not help
_MAX_TRIES = 5


def lock_path(report: Path) -> Path:
    return report.with_name(report.name + ".lock")


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lock, as its file says."""

    pid: int | None
    host: str | None
    since: str | None

    def describe(self) -> str:
        if self.pid is None:
            return "another batchrun process (it has not written its pid yet)"
        where = f" on host {self.host}" if self.host else ""
        since = f", since {self.since}" if self.since else ""
        return f"another batchrun process (pid {self.pid}{where}{since})"


class BatchLock:
    """The exclusive lock of one report, held from :meth:`acquire` until :meth:`release`."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, report: Path) -> BatchLock:
        """Hold the lock of ``report``; :class:`ReportError` naming the holder if another process
        holds it, or if the filesystem cannot lock."""
        path = lock_path(report)
        for _ in range(_MAX_TRIES):
            fd = _open(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise ReportError(
                    f"{report}: {holder.describe()} is running this batch: it holds {path}. "
                    "Two processes on one report would trigger the same runs twice; wait for it "
                    "to end (or stop it: SIGTERM drains what it has in flight), then rerun "
                    "with --resume"
                ) from None
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise ReportError(
                        f"{path}: this filesystem cannot lock files ({exc.strerror}), and without "
                        "a lock two processes on one report could trigger runs twice; put the "
                        "report on a filesystem that supports flock (a local disk, Azure Disk, "
                        "Azure Files over SMB 3 on Linux 5.5 or later)"
                    ) from None
                raise ReportError(f"{path}: cannot lock the report: {exc.strerror}") from None
            if _still_named(fd, path):
                lock = cls(path, fd)
                lock._write_holder()
                return lock
            # its holder let go and unlinked it between our open and our flock: take the new one
            os.close(fd)
        raise ReportError(f"{path}: kept being replaced while we tried to lock it; try again")

    def _write_holder(self) -> None:
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": utc_iso(_now())}
        text = (json.dumps(holder) + "\n").encode()
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, text, 0)
        except OSError:
            # the lock holds without it; only the refused process's message is less precise
            return

    def release(self) -> None:
        # unlinked before it is unlocked: whoever opens the name next gets a new file
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)

    def __enter__(self) -> BatchLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _now() -> datetime:
    return datetime.now(UTC)


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ReportError(f"{path}: cannot create the report's lock file: {exc.strerror}") from None


def _still_named(fd: int, path: Path) -> bool:
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _read_holder(fd: int) -> Holder:
    try:
        raw = os.pread(fd, 4096, 0)
        data = json.loads(raw)
    except (OSError, ValueError):
        return Holder(None, None, None)
    if not isinstance(data, dict):
        return Holder(None, None, None)
    pid, host, since = data.get("pid"), data.get("host"), data.get("since")
    return Holder(
        pid if isinstance(pid, int) else None,
        host if isinstance(host, str) else None,
        since if isinstance(since, str) else None,
    )
