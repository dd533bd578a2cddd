"""``batchrun emulator``: serve the local ARM/ADF emulator (its options are the emulator's own).

The emulator is imported only when this command is parsed or run: it is a test oracle, not part
of the client (import-linter keeps the rest of batchrun from importing it). It configures its own
output (``--quiet``) and maps its own errors: ``2`` a bad configuration, ``1`` cannot listen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

NAME = "emulator"
HELP = "serve the local ADF emulator"
UNDONE = "nothing was served"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from batchrun.emulator.server import add_arguments as add_emulator_arguments

    add_emulator_arguments(parser)


def command(args: argparse.Namespace) -> int:
    from batchrun.emulator.server import run

    return run(args)
