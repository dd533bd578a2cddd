"""The runIds a batch has claimed (:class:`Claims`): every run it created, kept compactly.

Reconciliation never hands a claimed run to another entry (:mod:`batchrun.run.reconcile`), so
every runId the batch was answered with is kept until the batch ends: 100,000 at 100,000 runs.
In a ``set`` each is a 128-bit ``int`` of 48 bytes (:func:`~batchrun.run.sharedreads.claim_key`)
and a 16-byte slot of a table kept under 60% full: ~9 MB, the table alone 4 MB, allocated anew
each time it doubles. Here the newest few thousand are in a ``set``; the older ones in sorted
arrays of 64-bit words, 16 bytes a runId, searched by bisection.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import Final

__all__ = ["Claims"]

# runIds in the set before it is sorted into arrays: a set this size is ~0.3 MB, and a runId is
# looked for in one more pair of arrays each time it fills (25 at 100,000 runs)
_CHUNK: Final = 4096
_WORD: Final = 64
_LOW: Final = (1 << _WORD) - 1


class Claims:
    """A set of claim keys (:func:`~batchrun.run.sharedreads.claim_key`: a GUID's 128-bit number,
    or another runId's text): ``add`` and ``in``."""

    __slots__ = ("_chunks", "_newest", "_texts")

    def __init__(self) -> None:
        self._newest: set[int] = set()
        # each chunk: the high words, sorted, and the low word of each beside it
        self._chunks: list[tuple[array[int], array[int]]] = []
        # runIds that are not GUIDs (not ADF's): kept as given
        self._texts: set[str] = set()

    def add(self, key: int | str) -> None:
        if isinstance(key, str):
            self._texts.add(key)
            return
        # a runId claimed twice may sit in two places: no harm to ``in``, and adding stays cheap
        self._newest.add(key)
        if len(self._newest) >= _CHUNK:
            ordered = sorted(self._newest)
            self._chunks.append(
                (array("Q", [k >> _WORD for k in ordered]), array("Q", [k & _LOW for k in ordered]))
            )
            self._newest = set()

    def __contains__(self, key: int | str) -> bool:
        if isinstance(key, str):
            return key in self._texts
        if key in self._newest:
            return True
        high, low = key >> _WORD, key & _LOW
        for highs, lows in self._chunks:
            at = bisect_left(highs, high)
            while at < len(highs) and highs[at] == high:
                if lows[at] == low:
                    return True
                at += 1
        return False
