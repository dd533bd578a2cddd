"""The rules of manifest v1 that more than one reader applies: the loader, the scope file reader
and the JSON Schema generator all check names and fields by these, so they cannot disagree.

Name rules follow the ADF REST API's own patterns and lengths (DESIGN.md "Manifest v1"). Names
become URL path segments, so none may be ``.`` or ``..`` (a client or proxy normalising the
path would send the request elsewhere) or hold a control character (NUL, newline, ...).
"""

from __future__ import annotations

import re
from typing import Final

from batchrun.model import RUN_FIELDS

__all__ = [
    "CONTROL",
    "ENTRY_FIELDS",
    "FIELDS",
    "GUID",
    "NAME_RULES",
    "PATH_UNSAFE",
    "REQUIRED",
    "name_problem",
    "subscription_problem",
    "text_problem",
]

# a run's fields but where it was read: hashed into the fingerprint, so their order is fixed
FIELDS: Final = tuple(name for name in RUN_FIELDS if name not in ("file", "at"))
# Fields of a manifest entry that shape the batch but are no field of a run: they are read,
# never hashed as such (the fingerprint hashes FIELDS of each run, so adding these leaves the
# fingerprint of every older manifest as it was).
ENTRY_FIELDS: Final = ("needs", "dates")
REQUIRED: Final = frozenset(("subscription", "resource_group", "factory", "pipeline"))
# C0 and C1 controls and the Unicode line separators: written in a form that Python's re and
# ECMAScript regular expressions (JSON Schema) both read the same way.
_CONTROLS: Final = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
CONTROL: Final = re.compile(f"[{_CONTROLS}]")
NAME_RULES: Final = {
    "factory": (
        re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*"),
        range(3, 64),
        "3-63 letters, digits and hyphens, starting and ending with a letter or digit (no '--')",
    ),
    "pipeline": (
        re.compile(rf"[A-Za-z0-9_][^<>*#.%&:\\+?/{_CONTROLS}]*"),
        range(1, 261),
        "1-260 characters, starting with a letter, digit or '_', without < > * # . % & : \\ + ? /"
        " or control characters",
    ),
    "resource_group": (
        # ARM: a resource group name may not end with '.', which also keeps out '.' and '..'
        re.compile(r"[-\w._()]*[-\w()]"),
        range(1, 91),
        "1-90 letters, digits, '_', '-', '.', '(' and ')', not ending with '.'",
    ),
}
PATH_UNSAFE: Final = re.compile(rf"[/?#%\s{_CONTROLS}]")
DOT_SEGMENTS: Final = frozenset((".", ".."))
GUID: Final = re.compile(r"[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}")


def name_problem(rule: str, value: str) -> str | None:
    """Why ``value`` is not a valid name under ``rule`` (a key of NAME_RULES), or None."""
    pattern, lengths, explanation = NAME_RULES[rule]
    if len(value) in lengths and pattern.fullmatch(value):
        return None
    return f"{value!r} is not a valid {rule.replace('_', ' ')} name: {explanation}"


def subscription_problem(value: str) -> str | None:
    """Why ``value`` cannot be a subscription id in a URL path, or None."""
    if value and not PATH_UNSAFE.search(value) and value not in DOT_SEGMENTS:
        return None
    rule = "it cannot contain '/', '?', '#', '%', spaces or control characters, or be '.' or '..'"
    return f"{value!r} is not a subscription id: {rule}" if value else "must not be empty"


def text_problem(value: str, *, name: bool) -> str | None:
    """Why ``value`` cannot be a text field, or None; a ``name`` (a run id or an activity name,
    sent to ADF) cannot hold a control character either. (A run's own id is only ours.)"""
    if value == "":
        return "must not be empty"
    if name and CONTROL.search(value):
        return f"{value!r} holds a control character: remove it"
    return None
