"""How much a manifest or a scope file may hold, each limit with its reason.

Every limit is checked while reading, before anything is sent, and reported at the
``FILE:LINE:COLUMN`` where it is crossed.
"""

from __future__ import annotations

from typing import Final

__all__ = ["INTEGERS", "MAX_DATES", "MAX_NESTING", "MAX_PARAMETER_VALUES", "MAX_YAML_NESTING"]

# Lists and mappings inside one run's parameters (aliases and merges included). ADF parameters
# are JSON; no real pipeline nests this deep, and walking deeper would exhaust Python's stack.
MAX_NESTING: Final = 64
# Lists and mappings in the whole YAML document: the composer recurses once per level. Above
# MAX_NESTING plus the manifest's own levels (runs, entry, parameters), far below the stack.
MAX_YAML_NESTING: Final = 100
# Values (scalars, lists and mappings) in one entry's parameters once aliases are expanded.
# PyYAML shares an aliased node, so a few lines can stand for 10^7 values (an "alias bomb",
# 7 s and 371 MB before this limit); a real run's parameters hold tens.
MAX_PARAMETER_VALUES: Final = 100_000
# Integers must fit a signed 64-bit integer: ADF is a .NET service and reads JSON integers as
# Int64; a longer one would be rounded or refused after the run was planned. (It also keeps
# Python from converting 4,300-digit strings, which it refuses.)
INTEGERS: Final = range(-(2**63), 2**63)
# Runs one `dates` range may expand to, whatever its `max` says: `max` is the author's guard
# against a typo in a range (default 400, a year and a month of days); this bound keeps a huge
# `max` from building millions of runs in memory before anything else is checked.
MAX_DATES: Final = 100_000
