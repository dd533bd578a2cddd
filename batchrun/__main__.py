"""The process's start: ``python -m batchrun``, and the ``batchrun`` script (``entry``)."""

import gc

# Start-up (the imports, the parser) allocates a few hundred thousand objects that live as long
# as the process, and next to no garbage: the collector would walk them about a hundred times,
# 10-15 ms before a batch's first request. cli.main turns it back on before the command runs.
gc.disable()

import sys  # noqa: E402

from batchrun.arm.tokenahead import fork_token_ahead, wants_token_ahead  # noqa: E402

# before the imports below (~0.3 s): a child signs in meanwhile, on a second core, and sends
# nothing before the batch asks (arm/tokenahead.py)
if wants_token_ahead(sys.argv[1:]):
    fork_token_ahead()

from batchrun.cli.main import entry  # noqa: E402

__all__ = ["entry"]

if __name__ == "__main__":
    entry()
