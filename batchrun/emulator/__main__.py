"""``python -m batchrun.emulator [options]``: the same options as ``batchrun emulator``."""

import argparse
import sys

from batchrun.emulator.server import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m batchrun.emulator",
        description="Local Azure Data Factory / ARM emulator for demos, tests and benchmarks.",
    )
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
