"""Canonical spellings under ``accept_any``: the first spelling seen of a name is the name.

ARM and ADF compare names case-insensitively but report a resource as it was created. With a
topology the config file is the creation; with ``accept_any`` the first request to use a name
creates it, so a later ``LOADORDERS`` still runs (and reports) ``LoadOrders``.
"""

from __future__ import annotations

__all__ = ["Spellings"]


class Spellings:
    def __init__(self) -> None:
        self._first: dict[tuple[str, ...], str] = {}

    def canonical(self, *scope: str, name: str) -> str:
        """The first spelling of ``name`` seen within ``scope`` (itself casefolded)."""
        key = (*(part.casefold() for part in scope), name.casefold())
        return self._first.setdefault(key, name)
