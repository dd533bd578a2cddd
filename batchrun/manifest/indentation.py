"""Hints for a misindented line, read from the text around it.

PyYAML says "did not find expected key" or "expected '-' indicator" where a key is one space off;
the manifest reader says "unknown key 'run_date'" where a parameter sits beside ``parameters:``
instead of under it. Both are right and neither says what to do. :func:`indentation_hint` looks
at the lines above the one reported and, when they show the likely cause, says it in a sentence:
"is this key indented under 'parameters' (line 7)? Its keys start at column 7, this line at
column 6". When the text shows nothing clear it says nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["indentation_hint"]

# "  - key: value", "key:", "'quoted key': value"; the key's column is where the key starts
_KEY_LINE: Final = re.compile(
    r"""^(?P<indent>\ *)(?P<dash>-\s+)?
    (?P<key>[^\s\#:'"{[][^:\#]*?|'[^']*'|"[^"]*")\s*:
    (?:\s+(?P<value>[^\#].*?))?\s*(?:\#.*)?$""",
    re.VERBOSE,
)
_HOW_FAR_BACK: Final = 200


@dataclass(frozen=True, slots=True)
class _Line:
    number: int  # 1-based
    column: int  # 0-based column of its key
    dash: int | None  # 0-based column of its "- ", when it starts a list item
    key: str
    opens: bool  # "key:" with nothing after: what follows is indented under it


def indentation_hint(text: str, line: int, *, unknown_key: bool = False) -> str | None:
    """A hint for the 1-based ``line`` of ``text``, or None. ``unknown_key``: the reader found a
    key there that does not belong at its level (rather than YAML failing to parse)."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    here = _parse(lines[line - 1], line)
    if here is None:
        return None
    above = _previous(lines, line)
    if above is None:
        return None
    if unknown_key:
        if above.opens and above.column == here.column:
            return (
                f"is this key meant to be indented under '{above.key}' (line {above.number})? "
                f"Indent it further than column {above.column + 1}"
            )
        return None
    indent = here.dash if here.dash is not None else here.column
    if indent > above.column and not above.opens:
        return (
            f"'{above.key}' (line {above.number}) already has its value, so nothing can be "
            f"indented under it: line this key up with '{above.key}' at column {above.column + 1}"
        )
    if indent < above.column:
        owner = _owner(lines, above)
        if owner is None or indent <= (owner.dash if owner.dash is not None else owner.column):
            return None
        if owner.opens:
            return (
                f"is this key indented under '{owner.key}' (line {owner.number})? Its keys "
                f"start at column {above.column + 1}, this line at column {indent + 1}"
            )
        return (
            f"is this key part of the list item at line {owner.number}? Its keys start at "
            f"column {above.column + 1}, this line at column {indent + 1}"
        )
    return None


def _parse(text: str, number: int) -> _Line | None:
    match = _KEY_LINE.match(text)
    if match is None:
        return None
    indent = len(match["indent"])
    dash = match["dash"]
    column = indent + len(dash) if dash else indent
    return _Line(
        number=number,
        column=column,
        dash=indent if dash else None,
        key=match["key"].strip("'\""),
        opens=not match["value"],
    )


def _content(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and not stripped.startswith("#")


def _previous(lines: list[str], line: int) -> _Line | None:
    """The nearest key line above ``line`` (blank and comment lines skipped)."""
    for number in range(line - 1, max(0, line - 1 - _HOW_FAR_BACK), -1):
        if _content(lines[number - 1]):
            return _parse(lines[number - 1], number)
    return None


def _owner(lines: list[str], child: _Line) -> _Line | None:
    """The line whose block holds ``child``: the nearest line above it that is indented less,
    or the list item whose first key lines up with it."""
    if child.dash is not None:
        return child
    for number in range(child.number - 1, max(0, child.number - 1 - _HOW_FAR_BACK), -1):
        if not _content(lines[number - 1]):
            continue
        parsed = _parse(lines[number - 1], number)
        if parsed is None:
            return None
        if parsed.dash is not None and parsed.column == child.column:
            return parsed
        if parsed.column < child.column:
            return parsed
    return None
