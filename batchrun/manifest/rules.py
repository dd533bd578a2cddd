"""The rules of manifest v1 that more than one reader applies: the loader, the scope file reader
and the JSON Schema generator all check names and fields by these, so they cannot disagree.

Name rules follow the ADF REST API's own patterns and lengths (DESIGN.md "Manifest v1").
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["FIELDS", "GUID", "NAME_RULES", "PATH_UNSAFE", "REQUIRED"]

FIELDS: Final = (
    "id",
    "subscription",
    "resource_group",
    "factory",
    "pipeline",
    "parameters",
    "reference_run_id",
    "is_recovery",
    "start_from_failure",
    "start_activity_name",
)
REQUIRED: Final = frozenset(("subscription", "resource_group", "factory", "pipeline"))
NAME_RULES: Final = {
    "factory": (
        re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*"),
        range(3, 64),
        "3-63 letters, digits and hyphens, starting and ending with a letter or digit (no '--')",
    ),
    "pipeline": (
        re.compile(r"[A-Za-z0-9_][^<>*#.%&:\\+?/]*"),
        range(1, 261),
        "1-260 characters, starting with a letter, digit or '_', without < > * # . % & : \\ + ? /",
    ),
    "resource_group": (
        re.compile(r"[-\w._()]+"),
        range(1, 91),
        "1-90 letters, digits, '_', '-', '.', '(' and ')'",
    ),
}
PATH_UNSAFE: Final = re.compile(r"[/?#%\s]")
GUID: Final = re.compile(r"[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}")
