"""Deterministic slices of a manifest: ``--shard K/N`` keeps the runs whose id hashes to slice K.

The hash is BLAKE2b of the run id's UTF-8 bytes, never Python's ``hash()`` (salted per process),
so every process, machine and Python version puts a run in the same shard, and the N shards of a
manifest partition it: each run lands in exactly one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from batchrun.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterable

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


class HasId(Protocol):
    @property
    def id(self) -> str: ...


RunT = TypeVar("RunT", bound=HasId)


def bucket(run_id: str, count: int) -> int:
    """The 0-based slice (``0 <= bucket < count``) that ``run_id`` belongs to."""
    digest = hashlib.blake2b(run_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


@dataclass(frozen=True, slots=True)
class Shard:
    """Slice ``index`` (1-based, as written on the command line) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 1 <= K <= N")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def selects(self, run_id: str) -> bool:
        return bucket(run_id, self.count) == self.index - 1


def parse_shard(text: str) -> Shard:
    """``"K/N"`` as a :class:`Shard`; a :class:`UsageError` that says what is expected otherwise."""
    match = _SHARD.fullmatch(text)
    if match is None:
        raise UsageError(
            f"--shard {text}: expected K/N, two whole numbers with 1 <= K <= N "
            "(e.g. --shard 2/4 for the second of four slices)"
        )
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise UsageError(f"--shard {text}: N must be at least 1 (N is the number of slices)")
    if not 1 <= index <= count:
        raise UsageError(
            f"--shard {text}: K must be between 1 and N (1..{count}); slices are numbered from 1"
        )
    return Shard(index, count)


def select(runs: Iterable[RunT], shard: Shard) -> list[RunT]:
    """The runs of ``shard``, in their original order."""
    return [run for run in runs if shard.selects(run.id)]
