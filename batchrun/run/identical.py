"""Identical manifest entries are triggered one after another, never at the same time."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from batchrun.model import RunSpec


class IdenticalRuns:
    """One lock per distinct createRun request, held while a run with that request is going.

    ADF's answers cannot tell two runs of the same request apart. Were identical entries sent at
    once and one answer lost, reconciliation could take the twin's run (whose answer is still on
    its way) for the lost one; one after another, the twin's run is claimed before it is looked
    for. A lock lives only while some entry with its request is going.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def one_at_a_time(self, spec: RunSpec) -> AsyncIterator[None]:
        key = _request_key(spec)
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


# json.dumps with arguments builds an encoder for every call: one key a run, built once
_KEY: Final = json.JSONEncoder(sort_keys=True, default=str)


def _request_key(spec: RunSpec) -> str:
    """What makes two createRun requests the same: where, which pipeline, with what.

    ARM names are case-insensitive: "LoadOrders" and "loadorders" are one request."""
    names = (spec.subscription, spec.resource_group, spec.factory, spec.pipeline)
    return _KEY.encode(
        [*(name.casefold() for name in names), spec.parameters, spec.recovery_query()]
    )
