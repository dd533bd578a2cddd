"""The command line's one edge: parse, configure logging, dispatch, turn errors into exit codes.

Each sub-command is a module (``run``, ``watch``, ``cancel``, ``validate``, ``summary``,
``recover``, ``emulator``, ``schema``) with
``NAME``, ``HELP``, ``UNDONE``, ``add_arguments(parser)`` and ``command(args) -> int``; the
commands raise, and only :func:`main` exits (through :mod:`batchrun.cli.exits`).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Protocol, cast

from batchrun import __version__
from batchrun.cli.exits import (
    EXIT_AUTH,
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SIGNAL,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    exit_for,
)
from batchrun.cli.options import HelpFormatter
from batchrun.errors import BatchrunError
from batchrun.log import configure

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["build_parser", "entry", "main"]


class SubCommand(Protocol):
    """What a sub-command module provides (a module satisfies this Protocol)."""

    NAME: str
    HELP: str
    UNDONE: str  # what was not done when it fails before acting: "nothing was sent"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def command(self, args: argparse.Namespace) -> int: ...


# each module's NAME is its own name; a module is imported only when its command is parsed or
# run (or for the full help), so `validate` does not pay for aiohttp and azure-identity
COMMANDS: tuple[str, ...] = (
    "run",
    "watch",
    "cancel",
    "validate",
    "summary",
    "recover",
    "emulator",
    "schema",
)


def subcommand(name: str) -> SubCommand:
    return cast("SubCommand", importlib.import_module(f"batchrun.cli.{name}"))


_EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}  done: every run triggered (--wait, watch: and Succeeded); validate: valid
  {EXIT_FAILED}  a run failed (--wait, watch: or did not succeed); validate --online: findings
  {EXIT_USAGE}  usage, manifest or report error (nothing sent), report locked or not writable
  {EXIT_AUTH}  authentication: no token could be had, or ARM answered 401
  {EXIT_SIGNAL[signal.SIGHUP]}/{EXIT_SIGNAL[signal.SIGINT]}/{EXIT_SIGNAL[signal.SIGTERM]}  \
stopped by SIGHUP/SIGINT/SIGTERM after draining in-flight runs (--resume finishes)
  {EXIT_BROKEN_PIPE}  the reader of stdout went away (| head)
"""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; given a known ``command``, only that sub-command's options are declared."""
    parser = argparse.ArgumentParser(
        prog="batchrun",
        description="Trigger many Azure Data Factory pipeline runs from one YAML manifest.",
        epilog=_EXIT_CODES,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"batchrun {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        if command in COMMANDS and name != command:
            commands.add_parser(name)
            continue
        sub = subcommand(name)
        sub.add_arguments(
            commands.add_parser(sub.NAME, help=sub.HELP, formatter_class=HelpFormatter)
        )
    return parser


def entry() -> NoReturn:
    """The process's entry point (the ``batchrun`` script, ``python -m batchrun``): main, exit."""
    code = main()
    # The process ends here. The interpreter's shutdown runs full collections over every object
    # left (0.03-0.15 s after a batch); frozen, they are skipped. Nothing is lost: objects are
    # still freed by their reference counts, and the report was closed by the command.
    gc.freeze()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    # a report may hold text with no UTF-8 (a lone surrogate an answer's JSON escaped): shown
    # as its escape, as stderr already does, rather than a traceback half-way through a table
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")
    try:
        try:
            return _main(argv)
        finally:
            # a reader that left early (`| head`) shows here, inside the handler below, rather
            # than as an unraisable error when the interpreter flushes stdout on its way out
            sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    # the command is the first word that is not an option: only --version comes before it
    first = next((word for word in given if not word.startswith("-")), None)
    args = build_parser(first).parse_args(given)
    sub = subcommand(args.command)
    # once per process, before anything logs; the emulator has no log options (it has its own)
    if hasattr(args, "log_level"):
        configure(fmt=args.log_format, level=args.log_level)
    detail = ""
    # the process started with the collector off (batchrun/__main__.py): the command's work
    # makes garbage, and whoever calls main in a process of their own has it on already
    gc.enable()
    try:
        code = sub.command(args)
    except BatchrunError as exc:
        ending = exit_for(exc, undone=sub.UNDONE)
        if ending is None:
            raise
        print(ending.message, file=sys.stderr)
        code, detail = ending.code, ending.message
    except KeyboardInterrupt:
        code = EXIT_SIGNAL[signal.SIGINT]
    # the one place every ending of a batch passes: also exit 2, 3, 4 and the signals
    _tell(args, code, detail)
    return code


_VERDICTS = {
    EXIT_OK: "every run succeeded",
    EXIT_FAILED: "some runs failed",
    EXIT_USAGE: "stopped: usage, manifest or report error",
    EXIT_AUTH: "stopped: authentication failed",
    EXIT_UNREACHABLE: "stopped: the endpoint is unreachable (--resume sends the rest)",
    **{code: f"interrupted by {sig.name} (--resume finishes)" for sig, code in EXIT_SIGNAL.items()},
}


def _verdict(command: str, code: int) -> str:
    verdict = _VERDICTS.get(code, f"ended with exit code {code}")
    if command == "watch" and code in EXIT_SIGNAL.values():
        # nothing is left to send: what is left is following
        verdict = verdict.replace("--resume finishes", "batchrun watch goes on")
    return verdict


def _tell(args: argparse.Namespace, code: int, detail: str) -> None:
    """Send the batch's one notification, if ``--notify``/``$BATCHRUN_NOTIFY`` asks for one."""
    if not hasattr(args, "notify_on") or getattr(args, "dry_run", False):
        return
    if args.notify_on == "failure" and code == EXIT_OK:
        return
    from batchrun.report.notify import Ending, compose, notify_urls, send

    urls = notify_urls(args.notify, os.environ)
    if not urls:
        return
    name = getattr(args, "manifest", None) or args.report
    ending = Ending(
        name=Path(name).name,
        code=code,
        verdict=_verdict(args.command, code),
        report=args.report,
        detail=detail,
    )
    try:
        message = compose(ending)
    except BatchrunError as exc:  # a report that cannot be read: say the ending, not the report
        message = compose(dataclasses.replace(ending, report=None, detail=f"{detail}\n{exc}"))
    for warning in send(urls, message):
        print(f"batchrun: warning: {warning}", file=sys.stderr)


def _discard_stdout() -> None:
    # as the Python docs advise for SIGPIPE: whatever is still buffered goes to devnull, so the
    # flush at exit does not raise again; stderr stays, for anything worth saying
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
