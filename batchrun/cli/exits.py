"""Exit codes, and the one map from an error batchrun raises on purpose to its code and message.

Core functions raise; only the CLI exits. Codes ``0``-``4`` and ``129``/``130``/``143`` are the
contract scripts depend on (DESIGN.md); ``141`` is what a shell reports for a program killed by
SIGPIPE.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from batchrun.errors import (
    AuthError,
    BatchrunError,
    ManifestError,
    OutputError,
    ReportError,
    ScopeError,
    UnreachableError,
    UsageError,
)

__all__ = [
    "EXIT_AUTH",
    "EXIT_BROKEN_PIPE",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_SIGNAL",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "Exit",
    "exit_for",
]

EXIT_OK = 0
# run / summary: at least one run failed; recover: a factory could not be searched
EXIT_FAILED = 1
# nothing was sent (or searched): a flag, manifest, scope, report or output file is the problem;
# or the report stopped taking lines mid-batch (a full disk): sending stopped, --resume finishes
EXIT_USAGE = 2
# no token could be had, or ARM rejected it
EXIT_AUTH = 3
# run: the endpoint never answered (refused, timed out, TLS) and the batch stopped early; apart
# from 2 (nothing could ever be sent as given) because a network may heal: --resume sends the rest
EXIT_UNREACHABLE = 4
# the reader of stdout went away (`| head`): 128 + SIGPIPE, as `seq 1e9 | head` gives under
# `set -o pipefail`, and unlike 0 or 1 it cannot be mistaken for an outcome of the runs
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
# stopped by a signal after draining what was in flight: 128 + the *first* signal (a SIGINT after
# a SIGTERM still exits 143), as a shell reports a process that signal killed
EXIT_SIGNAL = {
    signal.SIGHUP: 128 + signal.SIGHUP,
    signal.SIGINT: 128 + signal.SIGINT,
    signal.SIGTERM: 128 + signal.SIGTERM,
}


@dataclass(frozen=True, slots=True)
class Exit:
    """What the CLI ends with: the exit code, and the message for stderr."""

    code: int
    message: str


def exit_for(exc: BatchrunError, *, undone: str) -> Exit | None:
    """The exit for an error the CLI expects; ``None`` for one it does not (a bug: let it show).

    ``undone`` is what the command did not do because of it: ``"nothing was sent"``.
    """
    match exc:
        case ScopeError():
            # a scope file only ever feeds a search, whichever command read it
            return Exit(EXIT_USAGE, _positioned(exc, "nothing was searched"))
        case ManifestError():
            return Exit(EXIT_USAGE, _positioned(exc, undone))
        case UsageError() | ReportError() | OutputError():
            return Exit(EXIT_USAGE, f"batchrun: error: {exc}")
        case AuthError():
            return Exit(EXIT_AUTH, f"batchrun: authentication failed; {undone}:\n{exc}")
        case UnreachableError():
            return Exit(EXIT_UNREACHABLE, f"batchrun: error: {exc}")
    return None


def _positioned(exc: ScopeError | ManifestError, undone: str) -> str:
    return f"{exc}\nbatchrun: {len(exc.issues)} problem(s); {undone}"
