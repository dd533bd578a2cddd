"""``batchrun schema``: print the manifest's JSON Schema, the copy shipped in the package.

An editor anywhere can then validate manifests as you type: ``batchrun schema >
manifest-v1.schema.json`` beside them, and ``# yaml-language-server:
$schema=manifest-v1.schema.json`` at the top of each (the path is relative to the manifest).

Exit code: ``0``.
"""

from __future__ import annotations

import sys
from importlib.resources import files
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

NAME = "schema"
HELP = "print the manifest JSON Schema (for editors)"
UNDONE = "nothing was printed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print the JSON Schema of manifest v1 that ships in the package. Save it beside your "
        "manifests (batchrun schema > manifest-v1.schema.json) and start each manifest with "
        "'# yaml-language-server: $schema=manifest-v1.schema.json'."
    )


def command(args: argparse.Namespace) -> int:
    del args
    sys.stdout.write(files("batchrun").joinpath("schema/manifest-v1.json").read_text("utf-8"))
    return 0
