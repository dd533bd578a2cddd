"""``needs``: which runs each run waits for, resolved to run ids after expansion, and checked.

An item of ``needs`` is, in this order:

* a run id after expansion (``load.sales-eu``, ``load.2026-11-03``);
* the own id of an entry that was expanded (by factory/pipeline lists or ``dates``): all of
  its runs, except that when both the needing and the needed entry are date-expanded over the
  same dates, a run needs only the runs of its own date (``build.2026-11-03`` needs
  ``load.2026-11-03``);
* a glob (``*``, ``?``, ``[...]``, matched case-sensitively) over the run ids.

An id nothing has, a glob that matches nothing, a run that would need itself and a cycle are
errors at the needs item, all reported with the manifest's other errors. The loader keeps what
this reads only for the entries that have needs, so a manifest without any pays nothing.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from fnmatch import translate
from typing import TYPE_CHECKING, Final

from batchrun.errors import ManifestIssue

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from batchrun.manifest.fields import Need

__all__ = ["Group", "Want", "resolve"]

_GLOB: Final = re.compile(r"[*?\[]")


@dataclass(frozen=True, slots=True)
class Group:
    """The runs ``start``:``stop`` of an expanded entry (or of one derived id's dates), laid out
    factory-major with the date innermost: run ``start + i`` has date ``i % len(moments)``."""

    start: int
    stop: int
    moments: tuple[datetime, ...] | None


@dataclass(frozen=True, slots=True)
class Want:
    """An entry with needs: its index in ``runs``, its runs and dates (as a Group), its items."""

    entry: int
    runs: Group
    items: tuple[Need, ...]


def resolve(
    file: str,
    ids: Sequence[str],
    groups: dict[str, list[Group]],
    wants: Sequence[Want],
    may_exist: Callable[[str], bool],
) -> tuple[dict[str, tuple[str, ...]], list[ManifestIssue]]:
    """Each needing run's needed run ids (in manifest order), and the issues found.

    ``may_exist(text)`` says whether an id or glob that matches nothing may name a run of an
    entry that is invalid (and reported already): then it is not reported as unknown too.
    """
    issues: list[ManifestIssue] = []
    index = {run_id: number for number, run_id in enumerate(ids)}
    globs: dict[str, list[int]] = {}
    targets: dict[int, dict[int, Need]] = {}  # run -> needed run -> the item that says so

    def report(item: Need, entry: int, message: str) -> None:
        _, line, column, position = item
        path = f"runs[{entry}].needs" + ("" if position is None else f"[{position}]")
        issues.append(ManifestIssue(file, line + 1, column + 1, path, message))

    for want in wants:
        first, last = want.runs.start, want.runs.stop
        for item in want.items:
            text = item[0]
            per_run: Callable[[int], Sequence[int]] | None = None
            if text in index:
                found: Sequence[int] = (index[text],)
            elif text in groups:
                found, per_run = _group_targets(want.runs, groups[text])
            elif _GLOB.search(text):
                if text not in globs:
                    match = re.compile(translate(text)).match
                    globs[text] = [number for number, run_id in enumerate(ids) if match(run_id)]
                found = globs[text]
                if not found:
                    if not may_exist(text):
                        report(item, want.entry, f"the glob {text!r} matches no run id")
                    continue
            else:
                if not may_exist(text):
                    report(item, want.entry, _unknown(text, ids, groups))
                continue
            itself = False
            for run in range(first, last):
                needed = per_run(run) if per_run is not None else found
                if run in needed:
                    itself = True
                mine = targets.setdefault(run, {})
                for other in needed:
                    if other != run:
                        mine.setdefault(other, item)
            if itself:
                whose = "this run" if last - first == 1 else "runs of this entry"
                report(item, want.entry, f"{text!r} names {whose}: a run cannot need itself")
    entries = {run: want.entry for want in wants for run in range(want.runs.start, want.runs.stop)}
    for cycle in _cycles(targets):
        ring = " -> ".join(ids[run] for run in (*cycle, cycle[0]))
        item = targets[cycle[0]][cycle[1]]
        report(item, entries[cycle[0]], f"cycle: {ring}: none of them could start")
    needs = {
        ids[run]: tuple(ids[other] for other in sorted(needed))
        for run, needed in sorted(targets.items())
        if needed
    }
    return needs, issues


def _group_targets(
    wanting: Group, slices: list[Group]
) -> tuple[Sequence[int], Callable[[int], Sequence[int]] | None]:
    """All the runs of ``slices``, or, when every slice has the needing runs' dates, a function
    giving each needing run the runs of its own date."""
    everything = [run for part in slices for run in range(part.start, part.stop)]
    dates = wanting.moments
    if dates is None or any(part.moments != dates for part in slices):
        return everything, None
    width = len(dates)

    def same_date(run: int) -> Sequence[int]:
        day = (run - wanting.start) % width
        return [run for part in slices for run in range(part.start + day, part.stop, width)]

    return everything, same_date


def _unknown(text: str, ids: Sequence[str], groups: dict[str, list[Group]]) -> str:
    message = f"unknown run id {text!r}: no run has it after expansion"
    close = difflib.get_close_matches(text, [*groups, *ids], n=1)
    return f"{message}; did you mean {close[0]!r}?" if close else message


def _cycles(graph: dict[int, dict[int, Need]]) -> list[list[int]]:
    """One cycle (its runs in order, the lowest first) in each strongly connected part of the
    graph that has more than one run; Tarjan's algorithm, without recursion."""
    order: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    cycles: list[list[int]] = []
    for root in sorted(graph):
        if root in order:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        order[root] = low[root] = len(order)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in order:
                    order[child] = low[child] = len(order)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], order[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == order[node]:
                part: set[int] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    part.add(member)
                    if member == node:
                        break
                if len(part) > 1:
                    cycles.append(_ring(graph, part))
    return sorted(cycles)


def _ring(graph: dict[int, dict[int, Need]], part: set[int]) -> list[int]:
    """A shortest cycle through the lowest run of ``part`` (a strongly connected set)."""
    start = min(part)
    came_from: dict[int, int] = {}
    frontier = [start]
    while frontier:
        following: list[int] = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child == start:
                    ring = [node]
                    while ring[-1] != start:
                        ring.append(came_from[ring[-1]])
                    return ring[::-1]
                if child in part and child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError("a strongly connected set has a cycle through each of its runs")
