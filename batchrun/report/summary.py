"""What one or more reports say (``batchrun summary REPORT...``, shown by
:mod:`batchrun.report.render`).

A run id may have several lines: ``--resume`` appends a new line for every run it re-triggers.
The run's LAST line (reports read in the order given, lines in file order) is its outcome: it
decides the status totals, the per-pipeline counts, the error codes, ``reconciled`` and the slowest
runs, so a run that failed and then succeeded on resume counts once, as succeeded. Its attempts
are SUMMED over all its lines: the distribution says how many createRun requests each run cost in
total. The wall-clock span runs from the earliest ``started_at`` to the latest ``finished_at`` of
any line (a resumed report's span includes the pause between invocations), and throughput is
lines per second of that span.

A run not triggered because a run it needs did not succeed (its line says ``status: skipped``
and ``skipped_because: {needs, root, root_outcome}``) counts as skipped, and again under its root
cause: the run at the start of the chain and how it ended. Such a run makes ``summary`` exit 1,
as ``run`` does.
"""

from __future__ import annotations

import heapq
import sys
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batchrun.errors import ReportError
from batchrun.report.reader import read_records
from batchrun.times import parse_time, utc_iso

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime
    from pathlib import Path

    from batchrun.report.outcome import OutcomeSummary

STATUSES = ("succeeded", "failed", "skipped")
# a line's id is its key in summarize's table, not kept again in its slim record
_KEPT = ("factory", "pipeline", "status", "reconciled", "duration_ms")
# in a run's slim record: its attempts summed over its trigger lines (absent: none had one)
_TRIED = "attempts_summed"
# the key of an outcome line (report.outcome's slim keeps it): without one, report.outcome has
# nothing to add, and is not even imported (a batch without --wait)
_FOLLOWED = "outcome"
# summarize's runs are spread over this many tables by their id's hash: at the end of a batch
# the C allocator's heap is holes, too small for one table of 100,000 runs (5 MB of new pages
# on top of the batch's peak) but not for a thousand tables of a hundred (4 KB each)
_TABLES = 1024
SLOWEST = 5


@dataclass(frozen=True, slots=True)
class PipelineCounts:
    factory: str
    pipeline: str
    statuses: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class ErrorCount:
    code: str
    count: int
    example: str


@dataclass(frozen=True, slots=True)
class RootCause:
    """Runs skipped because a run they need, here or further up, did not succeed."""

    root: str
    """The run at the start of the chain."""
    outcome: str
    """How it ended: ``Failed``, ``Cancelled``, ``TimedOut``, ``failed to trigger``, …"""
    count: int


@dataclass(frozen=True, slots=True)
class SlowRun:
    id: str
    factory: str
    pipeline: str
    status: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Summary:
    reports: tuple[str, ...]
    lines: int
    statuses: Mapping[str, int]
    pipelines: tuple[PipelineCounts, ...]
    errors: tuple[ErrorCount, ...]
    attempts: Mapping[int, int]
    reconciled: int
    slowest: tuple[SlowRun, ...]
    first_started: datetime | None
    last_finished: datetime | None
    # the ids whose last line is failed, in the order of those lines
    failed_ids: tuple[str, ...] = ()
    outcomes: OutcomeSummary | None = None
    """How the followed runs ended (``--wait``/``watch`` outcome lines); None without any."""
    root_causes: tuple[RootCause, ...] = ()
    """The runs skipped because of a dependency, by root cause, the most skipped first."""

    @property
    def blocked(self) -> int:
        """Runs skipped because a run they need did not succeed."""
        return sum(cause.count for cause in self.root_causes)

    @property
    def runs(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> bool:
        """At least one run's outcome is ``failed``, or a followed run ended other than
        ``Succeeded``, or a run was skipped because of a dependency: ``batchrun summary``
        exits 1."""
        ended_badly = self.outcomes is not None and self.outcomes.failed
        return self.statuses.get("failed", 0) > 0 or ended_badly or self.blocked > 0

    @property
    def span_s(self) -> float | None:
        if self.first_started is None or self.last_finished is None:
            return None
        return max((self.last_finished - self.first_started).total_seconds(), 0.0)

    @property
    def first_started_at(self) -> str | None:
        """The earliest ``started_at``, as the report writes times."""
        return _iso(self.first_started)

    @property
    def last_finished_at(self) -> str | None:
        """The latest ``finished_at``, as the report writes times."""
        return _iso(self.last_finished)

    @property
    def throughput(self) -> float | None:
        """Report lines per second of the wall-clock span."""
        span = self.span_s
        return self.lines / span if span else None

    def to_dict(self) -> dict[str, Any]:
        span = self.span_s
        rate = self.throughput
        return {
            "reports": list(self.reports),
            "runs": self.runs,
            "lines": self.lines,
            "failed": self.failed,
            "statuses": dict(self.statuses),
            "pipelines": [
                {"factory": p.factory, "pipeline": p.pipeline, "statuses": dict(p.statuses)}
                for p in self.pipelines
            ],
            "errors": [
                {"code": e.code, "count": e.count, "example": e.example} for e in self.errors
            ],
            "attempts": {str(n): runs for n, runs in self.attempts.items()},
            "reconciled": self.reconciled,
            "slowest": [
                {
                    "id": s.id,
                    "factory": s.factory,
                    "pipeline": s.pipeline,
                    "status": s.status,
                    "duration_ms": s.duration_ms,
                }
                for s in self.slowest
            ],
            "first_started_at": self.first_started_at,
            "last_finished_at": self.last_finished_at,
            "span_s": None if span is None else round(span, 3),
            "lines_per_s": None if rate is None else round(rate, 3),
            "failed_ids": list(self.failed_ids),
            "followed": None if self.outcomes is None else self.outcomes.to_dict(),
            "skipped_because_of_dependency": {
                "runs": self.blocked,
                "root_causes": [
                    {"root": c.root, "root_outcome": c.outcome, "runs": c.count}
                    for c in self.root_causes
                ],
            },
        }


def summarize(paths: Sequence[Path]) -> Summary:
    """Read every report in ``paths`` (in order) and summarize the last line of each run id.

    A path that does not exist, or a file with content but no report line, raises
    :class:`ReportError` (a typo must not read as "0 runs").
    """
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise ReportError(f"no such report: {', '.join(missing)}")
    tally = Tally()
    for path in paths:
        lines_before = tally.lines
        for record in read_records(path):
            tally.add(record)
        if tally.lines == lines_before:
            _check_empty(path)
    return tally.summary(paths)


class Tally:
    """What :func:`summarize` keeps of a report's lines, one line at a time: fed by a reader, or
    by the writer as it writes them (``run`` then has its summary without reading the report
    back). :meth:`summary` is taken once."""

    __slots__ = ("_first_started", "_last_finished", "_tables", "lines")

    def __init__(self) -> None:
        # a run's number is its last line's, and its attempts ride in its slim record, which
        # holds five keys (a dict's smallest size) for a trigger line without its id
        self._tables: list[dict[str, tuple[int, dict[str, Any]]]] = [{} for _ in range(_TABLES)]
        self.lines = 0
        self._first_started: datetime | None = None
        self._last_finished: datetime | None = None

    def add(self, record: Mapping[str, Any]) -> None:
        """One report line, as it reads back from JSON; a line without a string id is not a
        run's."""
        run_id = record.get("id")
        if not isinstance(run_id, str):
            return
        self.lines += 1
        table = self._tables[hash(run_id) % _TABLES]
        earlier = table.get(run_id)
        tried = None if earlier is None else earlier[1].get(_TRIED)
        if _FOLLOWED not in record:  # an outcome line repeats its trigger line's attempts
            tried = (tried or 0) + _int(record.get("attempts"))
        slim = _slim(record)
        if tried is not None:
            slim[_TRIED] = tried
        table[run_id] = (self.lines, slim)
        started = parse_time(record.get("started_at"))
        finished = parse_time(record.get("finished_at"))
        if started is not None and (self._first_started is None or started < self._first_started):
            self._first_started = started
        if finished is not None and (self._last_finished is None or finished > self._last_finished):
            self._last_finished = finished

    def summary(self, paths: Sequence[Path]) -> Summary:
        """The summary of every line added, as the summary of ``paths``."""
        # in the order of their last lines
        last = [
            (number, run_id, slim)
            for table in self._tables
            for run_id, (number, slim) in table.items()
        ]
        self._tables = []
        last.sort()  # the numbers differ: never compares further
        outcomes = [slim for _, _, slim in last]
        # without an outcome line (no --wait, no watch) there is nothing to look for in every run
        followed = any(_FOLLOWED in slim for slim in outcomes)
        return Summary(
            reports=tuple(str(path) for path in paths),
            lines=self.lines,
            statuses=_status_counts(outcomes),
            pipelines=_pipelines(outcomes),
            errors=_errors(outcomes),
            attempts=dict(sorted(Counter(r[_TRIED] for r in outcomes if _TRIED in r).items())),
            reconciled=sum(1 for record in outcomes if record.get("reconciled") is True),
            slowest=_slowest(last),
            first_started=self._first_started,
            last_finished=self._last_finished,
            failed_ids=tuple(run_id for _, run_id, r in last if r.get("status") == "failed"),
            outcomes=_followed(outcomes) if followed else None,
            root_causes=_root_causes(outcomes),
        )


def _followed(outcomes: list[dict[str, Any]]) -> OutcomeSummary | None:
    from batchrun.report.outcome import summarize_outcomes

    return summarize_outcomes(outcomes)


def _check_empty(path: Path) -> None:
    """An empty report is a batch that wrote no line yet; anything else without a report line
    is not a report."""
    try:
        empty = path.stat().st_size == 0
    except OSError as exc:
        raise ReportError(f"{path}: cannot read the report: {exc.strerror}") from None
    if not empty:
        raise ReportError(
            f"{path}: not a batchrun report: none of its lines is a run's JSON object (with an "
            "'id'); give the .jsonl file that batchrun run --report wrote"
        )


# --- reading -------------------------------------------------------------------------------------


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else utc_iso(moment, timespec="auto")


def _slim(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the summary needs of a line: a 100,000-run report must fit in little memory."""
    slim = {key: record[key] for key in _KEPT if key in record}
    for key in ("factory", "pipeline", "status"):
        if isinstance(slim.get(key), str):
            slim[key] = sys.intern(slim[key])
    error = record.get("error")
    if record.get("status") == "failed" and isinstance(error, dict):
        slim["error"] = {"code": error.get("code"), "message": error.get("message")}
    if _FOLLOWED in record:
        from batchrun.report.outcome import slim as slim_outcome

        slim.update(slim_outcome(record))
    because = record.get("skipped_because")
    if record.get("status") == "skipped" and isinstance(because, dict):
        slim["skipped_because"] = (_str(because.get("root")), _str(because.get("root_outcome")))
    return slim


def _status_counts(outcomes: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(_str(record.get("status"), "unknown") for record in outcomes)
    ordered = {status: counts.pop(status, 0) for status in STATUSES}
    ordered.update(sorted(counts.items()))
    return ordered


def _pipelines(outcomes: Iterable[dict[str, Any]]) -> tuple[PipelineCounts, ...]:
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in outcomes:
        key = (_str(record.get("factory")), _str(record.get("pipeline")))
        grouped.setdefault(key, []).append(record)
    return tuple(
        PipelineCounts(factory, pipeline, _status_counts(records))
        for (factory, pipeline), records in sorted(grouped.items())
    )


def _errors(outcomes: Iterable[dict[str, Any]]) -> tuple[ErrorCount, ...]:
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for record in outcomes:
        if record.get("status") != "failed":
            continue
        error = record.get("error")
        error = error if isinstance(error, dict) else {}
        code = _str(error.get("code"), "unknown")
        counts[code] += 1
        examples.setdefault(code, _str(error.get("message")))
    return tuple(
        ErrorCount(code, count, examples[code])
        for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    )


def _root_causes(outcomes: Iterable[dict[str, Any]]) -> tuple[RootCause, ...]:
    counts = Counter(
        record["skipped_because"] for record in outcomes if "skipped_because" in record
    )
    return tuple(
        RootCause(root, outcome, count)
        for (root, outcome), count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    )


def _slowest(last: Iterable[tuple[int, str, dict[str, Any]]]) -> tuple[SlowRun, ...]:
    # the same as sorting every run and taking the first few, without a SlowRun for each
    slowest = (
        (run_id, record)
        for _, run_id, record in heapq.nsmallest(
            SLOWEST, last, key=lambda run: (-_int(run[2].get("duration_ms")), run[1])
        )
    )
    return tuple(
        SlowRun(
            id=run_id,
            factory=_str(record.get("factory")),
            pipeline=_str(record.get("pipeline")),
            status=_str(record.get("status"), "unknown"),
            duration_ms=_int(record.get("duration_ms")),
        )
        for run_id, record in slowest
    )
