"""``batchrun validate MANIFEST...``: check manifests, print the runs per factory; send nothing.

Exit codes: ``0`` every manifest is valid; ``2`` one is not (every problem printed, with its
position).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from batchrun.cli.exits import EXIT_OK
from batchrun.cli.options import add_log_options
from batchrun.manifest.loader import describe, load_manifests

NAME = "validate"
HELP = "check manifests; send nothing"
UNDONE = "nothing was sent"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", type=Path, nargs="+", metavar="MANIFEST")
    add_log_options(parser)


def command(args: argparse.Namespace) -> int:
    manifests = load_manifests(args.manifests, environ=os.environ)
    print(describe(manifests))
    return EXIT_OK
