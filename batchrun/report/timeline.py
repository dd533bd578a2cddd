"""The night as time: each run's trigger, queue, run and end, placed on one clock per report set.

:func:`read_timeline` keeps a few floats per run (the last line of each id, as ``summary`` does),
so a 100,000-run night fits in little memory; :mod:`batchrun.report.html` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batchrun.report.reader import read_records
from batchrun.times import parse_time

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime
    from pathlib import Path

# what a run's last line says about it, in the order the legend shows them
KINDS = ("succeeded", "failed", "cancelled", "timedout", "not-triggered", "not-followed")


@dataclass(frozen=True, slots=True)
class RunSpan:
    """One run, in seconds after the night's first trigger; ``None`` where no line says."""

    row: tuple[str, str]
    kind: str
    trigger: float
    run_start: float | None
    run_end: float | None


@dataclass(frozen=True, slots=True)
class Timeline:
    start: datetime | None
    span_s: float
    runs: tuple[RunSpan, ...]

    @property
    def rows(self) -> list[tuple[str, str]]:
        return sorted({run.row for run in self.runs})


def kind_of(record: dict[str, Any]) -> str:
    """The legend class of a run's last line: its outcome, or how far it got without one."""
    if record.get("status") != "succeeded":
        return "not-triggered"
    outcome = record.get("outcome")
    if not isinstance(outcome, str):
        return "not-followed"
    kind = outcome.lower()
    return kind if kind in KINDS else "failed"


def read_timeline(paths: Sequence[Path]) -> Timeline:
    last: dict[str, tuple[tuple[str, str], str, datetime, datetime | None, datetime | None]] = {}
    for path in paths:
        for record in read_records(path):
            run_id = record.get("id")
            trigger = parse_time(record.get("started_at"))
            if not isinstance(run_id, str) or trigger is None:
                continue
            row = (str(record.get("factory", "")), str(record.get("pipeline", "")))
            last.pop(run_id, None)
            last[run_id] = (
                row,
                kind_of(record),
                trigger,
                parse_time(record.get("run_start")),
                parse_time(record.get("run_end")),
            )
    if not last:
        return Timeline(start=None, span_s=0.0, runs=())
    start = min(trigger for _, _, trigger, _, _ in last.values())

    def seconds(moment: datetime | None) -> float | None:
        return None if moment is None else max((moment - start).total_seconds(), 0.0)

    runs = tuple(
        RunSpan(row, kind, seconds(trigger) or 0.0, seconds(run_start), seconds(run_end))
        for row, kind, trigger, run_start, run_end in last.values()
    )
    end = max(max(r.trigger, r.run_start or 0.0, r.run_end or 0.0) for r in runs)
    return Timeline(start=start, span_s=max(end, 1.0), runs=runs)
