"""Text for people: cut to fit one line (an error in a table cell, a body in a message, a YAML
comment), and counted nouns."""

from __future__ import annotations

from typing import Final

__all__ = ["ELLIPSIS", "counted", "shorten"]

ELLIPSIS: Final = "…"


def shorten(text: str, limit: int, *, cut_to: int | None = None, tidy: bool = False) -> str:
    """``text`` on one line: every run of whitespace becomes one space, and a text longer than
    ``limit`` is cut to ``cut_to`` characters (default ``limit - 1``, so that the result fits in
    ``limit``) followed by ``…``.

    ``tidy`` also turns control characters into spaces and leaves no space before the ``…``: for
    text that goes where a stray escape or line break would do harm (a YAML comment, a terminal).
    """
    if tidy:
        text = "".join(c if c.isprintable() or c.isspace() else " " for c in text)
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    kept = flat[: limit - 1 if cut_to is None else cut_to]
    return (kept.rstrip() if tidy else kept) + ELLIPSIS


def counted(count: int, noun: str) -> str:
    """``1 run``, ``2 runs``, ``3 factories``."""
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun[:-1]}ies" if noun.endswith("y") else f"{count} {noun}s"
