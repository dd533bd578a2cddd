"""Waiting for whichever comes first: a stop, a change, a timer."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable

__all__ = ["first_of"]


async def first_of(*waits: Awaitable[object], within_s: float | None = None) -> None:
    """Until the first of ``waits`` is done, or ``within_s`` seconds pass (None: no limit).

    The others are cancelled and awaited before this returns: a wait left pending would hold its
    event or timer, and warn "Task was destroyed but it is pending" when the loop closes. A wait
    that raised is raised here: a broken sleep taken for a wait that ended would spin its loop.
    """
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        ended = await asyncio.gather(*tasks, return_exceptions=True)
    for error in ended:
        if isinstance(error, Exception):
            raise error
