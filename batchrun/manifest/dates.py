"""A ``dates`` range: one run per date (or hour) from ``from`` to ``to``, both included.

A backfill after an outage is one entry with ``dates: {from: 2026-11-01, to: 2026-11-30,
parameter: run_date}``: thirty runs, ``<id>.2026-11-01`` … ``<id>.2026-11-30``, each with the
date as text in ``run_date``. The dates are wall-clock dates the pipeline receives as text, so
they carry no time zone. ``step`` is ``Nd`` or ``Nh`` (default ``1d``); ``format`` is a
strftime format, ISO by default (``YYYY-MM-DD`` for day steps, ``YYYY-MM-DDTHH:MM`` for hour
steps). More than ``max`` dates (default 400) is an error: a range that long is more likely a
typo than a backfill.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from batchrun.manifest.limits import MAX_DATES

__all__ = ["DEFAULT_MAX", "Dates", "expand", "moment", "step"]

DEFAULT_MAX: Final = 400
_STEP: Final = re.compile(r"([1-9][0-9]{0,5})([dh])")
_DAY_FORMAT: Final = "%Y-%m-%d"
_HOUR_FORMAT: Final = "%Y-%m-%dT%H:%M"


@dataclass(frozen=True, slots=True)
class Dates:
    """An entry's dates, expanded: each run gets ``labels[i]`` in ``parameter`` and its id."""

    parameter: str
    moments: tuple[datetime, ...]  # what per-date pairing of needs compares
    labels: tuple[str, ...]  # the formatted dates, distinct


def moment(text: str) -> datetime | str:
    """The date or date-time ``text`` is (ISO 8601, no zone), or why it is none."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return f"{text!r} is not a date: write YYYY-MM-DD, or YYYY-MM-DDTHH:MM for hours"
    if value.tzinfo is not None:
        return (
            f"{text!r} has a time zone: dates are passed to the pipeline as text, without one;"
            " write the wall-clock date the pipeline expects"
        )
    return value


def step(text: str) -> timedelta | str:
    """The step ``text`` (``Nd`` or ``Nh``) is, or why it is none."""
    match = _STEP.fullmatch(text)
    if match is None:
        return f"{text!r} is not a step: write a number of days or hours, like 1d or 6h"
    number, unit = int(match[1]), match[2]
    return timedelta(days=number) if unit == "d" else timedelta(hours=number)


def expand(
    start: datetime,
    stop: datetime,
    by: timedelta,
    *,
    parameter: str,
    strftime: str | None,
    limit: int,
) -> Dates | tuple[str, str]:
    """The dates from ``start`` to ``stop``, or (which key is wrong, why) when there are none,
    more than ``limit``, or a ``strftime`` format that writes two of them alike."""
    if start > stop:
        return "to", f"'to' ({_shown(stop)}) is before 'from' ({_shown(start)})"
    count = (stop - start) // by + 1
    if count > min(limit, MAX_DATES):
        bound = f"max is {limit}" if limit <= MAX_DATES else f"at most {MAX_DATES:,} are read"
        return "to", (
            f"the range makes {count:,} runs and {bound}: narrow the range, or raise max if"
            " that many runs are meant"
        )
    moments = tuple(start + index * by for index in range(count))
    if strftime is None:
        strftime = _DAY_FORMAT if by % timedelta(days=1) == timedelta(0) else _HOUR_FORMAT
    labels = tuple(when.strftime(strftime) for when in moments)
    if len(set(labels)) < count:
        first = next(label for index, label in enumerate(labels) if label in labels[:index])
        return "format", (
            f"format {strftime!r} writes two dates as {first!r}: each run needs its own id;"
            " include the parts that differ (%d for days, %H for hours)"
        )
    return Dates(parameter, moments, labels)


def _shown(when: datetime) -> str:
    """A date as its author would write it: without a time when it is midnight."""
    if when == datetime.combine(when.date(), datetime.min.time()):
        return when.date().isoformat()
    return when.isoformat(timespec="minutes")
