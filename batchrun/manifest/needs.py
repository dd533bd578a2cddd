"""``needs``: which runs each run waits for, resolved to run ids after expansion, and checked.

An item of ``needs`` is, in this order:

* a run id after expansion (``load.sales-eu``, ``load.2026-11-03``);
* the own id of an entry that was expanded (by factory/pipeline lists or ``dates``): all of
  its runs, except that when both the needing and the needed entry are date-expanded over the
  same dates, a run needs only the runs of its own date (``build.2026-11-03`` needs
  ``load.2026-11-03``);
* a glob (``*``, ``?``, ``[...]``, matched case-sensitively) over the run ids.

An id nothing has, a glob that matches nothing, an id that is both a run's and an expanded
entry's (it could mean either), a run that would need itself and a cycle are errors at the
needs item, all reported with the manifest's other errors. The loader keeps what
this reads only for the entries that have needs, so a manifest without any pays nothing.
"""

from __future__ import annotations

import difflib
import re
from bisect import bisect_right
from dataclasses import dataclass
from fnmatch import translate
from typing import TYPE_CHECKING, Final, TypeAlias

from batchrun.errors import ManifestIssue

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from batchrun.manifest.fields import Need

    _PerRun: TypeAlias = Callable[[int], Sequence[int]]  # the runs a needing run needs

__all__ = ["Group", "Want", "resolve"]

_GLOB: Final = re.compile(r"[*?\[]")
# unknown ids that get a "did you mean": each look-up compares with every id (~1 s over
# 100,000 runs), and a manifest with many unknown ids has a cause that a hint would not fix
_HINTED: Final = 10


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
    # run -> the runs it needs: lists of ints, not sets, as there may be one per run
    targets: dict[int, list[int]] = {}
    hints = _HINTED

    def report(item: Need, entry: int, message: str) -> None:
        _, line, column, position = item
        path = f"runs[{entry}].needs" + ("" if position is None else f"[{position}]")
        issues.append(ManifestIssue(file, line + 1, column + 1, path, message))

    def runs_of(want: Want, text: str) -> tuple[Sequence[int], _PerRun | None]:
        """The runs ``text`` names for ``want``'s runs: the same for all, or per run."""
        if text in index:
            return (index[text],), None
        if text in groups:
            return _group_targets(want.runs, groups[text])
        if _GLOB.search(text):
            if text not in globs:
                match = re.compile(translate(text)).match
                globs[text] = [number for number, run_id in enumerate(ids) if match(run_id)]
            return globs[text], None
        return (), None

    for want in wants:
        first, last = want.runs.start, want.runs.stop
        for item in want.items:
            text = item[0]
            if text in index and text in groups:
                report(item, want.entry, _ambiguous(text, groups[text]))
                continue
            found, per_run = runs_of(want, text)
            if not found:
                if may_exist(text):
                    continue
                if _GLOB.search(text):
                    report(item, want.entry, f"the glob {text!r} matches no run id")
                else:
                    report(item, want.entry, _unknown(text, ids, groups, hint=hints > 0))
                    hints -= 1
                continue
            itself = False
            for run in range(first, last):
                needed = per_run(run) if per_run is not None else found
                mine = targets.setdefault(run, [])
                mine.extend(needed)
                if run in needed:
                    itself = True
                    mine.remove(run)
            if itself:
                whose = "this run" if last - first == 1 else "runs of this entry"
                report(item, want.entry, f"{text!r} names {whose}: a run cannot need itself")
    for run, needed in targets.items():
        targets[run] = sorted(set(needed))
    starts = [want.runs.start for want in wants]
    for cycle in _cycles(targets, len(ids)):
        ring = " -> ".join(ids[run] for run in (*cycle, cycle[0]))
        want = wants[bisect_right(starts, cycle[0]) - 1]
        for item in want.items:
            found, per_run = runs_of(want, item[0])
            if cycle[1] in (per_run(cycle[0]) if per_run is not None else found):
                report(item, want.entry, f"cycle: {ring}: none of them could start")
                break
    needs = {
        ids[run]: tuple(ids[other] for other in needed)
        for run, needed in sorted(targets.items())
        if needed
    }
    return needs, issues


def _group_targets(wanting: Group, slices: list[Group]) -> tuple[Sequence[int], _PerRun | None]:
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


def _ambiguous(text: str, slices: list[Group]) -> str:
    runs = sum(part.stop - part.start for part in slices)
    return (
        f"{text!r} is the id of a run and of an expanded entry ({runs} runs): it could mean "
        "either; give one of the two entries another id"
    )


def _unknown(text: str, ids: Sequence[str], groups: dict[str, list[Group]], *, hint: bool) -> str:
    message = f"unknown run id {text!r}: no run has it after expansion"
    close = difflib.get_close_matches(text, [*groups, *ids], n=1) if hint else []
    return f"{message}; did you mean {close[0]!r}?" if close else message


def _cycles(graph: dict[int, list[int]], size: int) -> list[list[int]]:
    """One cycle (its runs in order, the lowest first) in each strongly connected part of the
    graph that has more than one run; Tarjan's algorithm, without recursion, its state in
    lists as long as the runs (a dict per run would cost ~100 bytes each)."""
    unseen = -1
    order, low = [unseen] * size, [0] * size
    on_stack = bytearray(size)
    stack: list[int] = []
    cycles: list[list[int]] = []
    counter = 0
    for root in sorted(graph):
        if order[root] != unseen:
            continue
        order[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = 1
        work = [(root, iter(graph.get(root, ())))]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if order[child] == unseen:
                    order[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack[child] = 1
                    work.append((child, iter(graph.get(child, ()))))
                elif on_stack[child]:
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
                    on_stack[member] = 0
                    part.add(member)
                    if member == node:
                        break
                if len(part) > 1:
                    cycles.append(_ring(graph, part))
    return sorted(cycles)


def _ring(graph: dict[int, list[int]], part: set[int]) -> list[int]:
    """A shortest cycle through the lowest run of ``part`` (a strongly connected set)."""
    start = min(part)
    came_from: dict[int, int] = {}
    frontier = [start]
    while frontier:
        following: list[int] = []
        for node in frontier:
            for child in graph.get(node, ()):
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
