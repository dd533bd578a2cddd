"""Every error batchrun raises on purpose.

::

    BatchrunError
    ├── PositionedError      a file the user gave is invalid; carries every problem found, each
    │   │                    with its file, line and column (exit 2)
    │   ├── ManifestError    ... a manifest
    │   └── ScopeError       ... the scope file of ``batchrun recover --scope``
    ├── UsageError           a flag or file the user gave cannot be used (exit 2)
    ├── ReportError          the report cannot be written or resumed (exit 2)
    │   └── WriteError       a line could not be written (a full disk, a file size limit):
    │                        the batch stops sending, ``--resume`` finishes it
    ├── OutputError          another file batchrun writes (the recovery manifest) cannot be
    │                        written: the disk, not the user, said no (exit 2)
    ├── AuthError            no token could be had (exit 3)
    ├── UnreachableError     the endpoint never answered: connections refused, timed out or
    │                        failed TLS; the batch stopped early (exit 4)
    └── ApiError             ARM/ADF answered with an error, or no answer came
        └── TransportError   no HTTP response: connect error, timeout, dropped connection

``ApiError.transient`` says whether retrying may help; ``ApiError.sent`` says whether the request
may have reached the service (an ambiguous failure of a createRun may still have created the run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class BatchrunError(Exception):
    """Base of all errors batchrun raises on purpose."""


@dataclass(frozen=True, slots=True)
class ManifestIssue:
    """One problem in a manifest, located as precisely as the YAML allows."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PositionedError(BatchrunError):
    """A YAML file the user gave is invalid; ``issues`` holds every problem found, in order."""

    def __init__(self, issues: list[ManifestIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


class ManifestError(PositionedError):
    """A manifest is invalid: nothing of it is sent."""


class ScopeError(PositionedError):
    """The scope file of ``batchrun recover`` is invalid: nothing is searched."""


class UsageError(BatchrunError):
    """A flag, path or environment value that cannot be used as given."""


class ReportError(BatchrunError):
    """The report file cannot be created, appended to or resumed from."""


class WriteError(ReportError):
    """A line could not be written whole to the report or its journal: the disk is full, the
    file hit a size limit, the device failed. ``path`` and ``reason`` (the OS's words) say which."""

    def __init__(self, *, path: str, reason: str, what: str = "report") -> None:
        self.path = path
        self.reason = reason
        self.what = what
        super().__init__(f"{path}: cannot write the {what}: {reason}")


class OutputError(BatchrunError):
    """A file batchrun writes besides the report (the recovery manifest) could not be written."""


class AuthError(BatchrunError):
    """No token could be had from the credential chain."""


class UnreachableError(BatchrunError):
    """The management endpoint never answered a batch: no connection could be made."""


class ApiError(BatchrunError):
    """An error answer from ARM/ADF (a CloudError, or a body that was not one)."""

    def __init__(
        self,
        *,
        status: int | None,
        code: str,
        message: str,
        target: str | None = None,
        details: list[Any] | None = None,
        request_id: str | None = None,
        correlation_id: str | None = None,
        retry_after: float | None = None,
        transient: bool = False,
        sent: bool = True,
        remaining_writes: int | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.details = details or []
        self.request_id = request_id
        self.correlation_id = correlation_id
        self.retry_after = retry_after
        self.transient = transient
        self.sent = sent
        # an error answer still reports the write budget; the pacer wants it
        self.remaining_writes = remaining_writes
        prefix = f"HTTP {status} " if status is not None else ""
        super().__init__(f"{prefix}{code}: {message}")

    def as_report(self) -> dict[str, Any]:
        """The ``error`` object of a report line."""
        return {
            "code": self.code,
            "message": self.message,
            "target": self.target,
            "details": self.details,
        }


class TransportError(ApiError):
    """No HTTP response arrived: the request failed to connect, timed out or was cut off."""
