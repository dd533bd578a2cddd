"""The order that a manifest's ``needs`` put its runs in: levels, the longest chain, and one
valid trigger order.

Level 0 holds the runs that need nothing; a run is one level above the highest run it needs.
The manifest is validated acyclic (:mod:`batchrun.manifest.needs`), so every run has a level.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batchrun.manifest.loader import Manifest
    from batchrun.model import RunSpec

__all__ = ["in_order", "levels", "longest_chain"]


def in_order(manifest: Manifest) -> list[RunSpec]:
    """The runs in an order where each comes after every run it needs; among the runs that are
    ready, manifest order (Kahn's algorithm, taking the earliest ready run first)."""
    runs, needs = manifest.runs, manifest.needs
    if not needs:
        return list(runs)
    position = {spec.id: number for number, spec in enumerate(runs)}
    waiting = [0] * len(runs)
    needed_by: dict[int, list[int]] = {}
    for run_id, needed in needs.items():
        if run_id not in position:
            continue  # a run that --shard left out, as are the needs below that it does
        for other in needed:
            if other in position:
                waiting[position[run_id]] += 1
                needed_by.setdefault(position[other], []).append(position[run_id])
    ready = [number for number, count in enumerate(waiting) if count == 0]
    ordered: list[RunSpec] = []
    while ready:
        number = heapq.heappop(ready)
        ordered.append(runs[number])
        for follower in needed_by.get(number, ()):
            waiting[follower] -= 1
            if waiting[follower] == 0:
                heapq.heappush(ready, follower)
    if len(ordered) != len(runs):
        raise ValueError(f"{manifest.path}: the needs of its runs form a cycle")
    return ordered


def _depths(manifest: Manifest) -> dict[str, int]:
    needs, depth = manifest.needs, dict[str, int]()
    for spec in in_order(manifest):
        needed = [other for other in needs.get(spec.id, ()) if other in depth]
        depth[spec.id] = 1 + max(depth[other] for other in needed) if needed else 0
    return depth


def levels(manifest: Manifest) -> list[list[str]]:
    """The run ids of each level, level 0 first, each in manifest order."""
    if not manifest.needs:
        return [[spec.id for spec in manifest.runs]] if manifest.runs else []
    depth = _depths(manifest)
    grouped: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for spec in manifest.runs:
        grouped[depth[spec.id]].append(spec.id)
    return grouped


def longest_chain(manifest: Manifest) -> list[str]:
    """The run ids of a longest chain of needs, the first needed run first; the first such
    chain in manifest order. Empty when no run needs another."""
    if not manifest.needs:
        return []
    depth = _depths(manifest)
    last = max(manifest.runs, key=lambda spec: depth[spec.id]).id  # the first of the deepest
    chain = [last]
    while depth[chain[-1]]:
        level = depth[chain[-1]] - 1
        chain.append(next(o for o in manifest.needs[chain[-1]] if depth.get(o) == level))
    return chain[::-1]
