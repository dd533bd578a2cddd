"""``batchrun summary REPORT...``: what one or more reports say, as a table, JSON or markdown.

Exit codes: ``0`` no run failed; ``1`` at least one did (its last line says so); ``2`` a report
cannot be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from batchrun.cli.exits import EXIT_FAILED, EXIT_OK
from batchrun.cli.options import add_log_options
from batchrun.report.summary import FORMATS, render, summarize

if TYPE_CHECKING:
    import argparse

NAME = "summary"
HELP = "summarise one or more reports"
UNDONE = "nothing was sent"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports", type=Path, nargs="+", metavar="REPORT")
    parser.add_argument("--format", choices=FORMATS, default="table")
    add_log_options(parser)


def command(args: argparse.Namespace) -> int:
    summary = summarize(args.reports)
    print(render(summary, args.format))
    return EXIT_FAILED if summary.failed else EXIT_OK
