"""``batchrun summary REPORT...``: what one or more reports say, as a table, JSON, markdown or a
self-contained HTML page (``--format html -o night.html``).

Exit codes: ``0`` no run failed; ``1`` at least one did (its last line says so), or was skipped
because a run it needs did not succeed; ``2`` a report cannot be read, or the output cannot be
written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from batchrun.cli.exits import EXIT_FAILED, EXIT_OK
from batchrun.cli.options import add_log_options
from batchrun.errors import OutputError
from batchrun.report.render import FORMATS, render
from batchrun.report.summary import summarize

if TYPE_CHECKING:
    import argparse

NAME = "summary"
HELP = "summarise one or more reports"
UNDONE = "nothing was sent"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports", type=Path, nargs="+", metavar="REPORT")
    parser.add_argument(
        "--format",
        choices=(*FORMATS, "html"),
        default="table",
        help="html: one self-contained page (timeline, counts, failures); use with -o",
    )
    parser.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout"
    )
    add_log_options(parser)


def command(args: argparse.Namespace) -> int:
    summary = summarize(args.reports)
    if args.format == "html":
        # here, not at the top: the other formats need none of the drawing
        from batchrun.report.html import render_html
        from batchrun.report.timeline import read_timeline

        text = render_html(summary, read_timeline(args.reports)).rstrip("\n")
    else:
        text = render(summary, args.format)
    if args.output is None:
        # print, not one write: its closing newline is a second write, which is where a reader
        # that left (`| head -1`) shows as a BrokenPipeError (tests/cli/test_broken_pipe.py)
        print(text)
    else:
        _write(args.output, text + "\n")
        print(f"summary: {args.output}")
    return EXIT_FAILED if summary.failed else EXIT_OK


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(
            f"{path}: cannot write the summary: {exc.strerror}; give -o a writable path"
        ) from None
