"""What the outcome lines of a report say: how the followed runs ended, and why they failed.

An outcome line (``--wait``, ``watch``) repeats its run's trigger line and adds ``outcome``
(``Succeeded|Failed|Cancelled|TimedOut``), ``run_duration_ms``, ``queued_ms``, ``monitor_url``
and, for a failed run, ``failure: {activity, activity_type, code, message, failure_type}``.
:func:`summarize_outcomes` reads the last line of every run (as ``summary`` does): a run whose
trigger succeeded but whose end no line tells counts as ``not followed``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

OUTCOMES: Final = ("Succeeded", "Failed", "Cancelled", "TimedOut")
NOT_FOLLOWED: Final = "not followed"
# the outcome fields summary keeps of a line (a big report must fit in little memory)
KEPT: Final = ("outcome", "run_duration_ms", "queued_ms")


def slim(record: Mapping[str, Any]) -> dict[str, Any]:
    """The outcome fields of a line that the summary needs; empty for a trigger-only line."""
    if not isinstance(record.get("outcome"), str):
        return {}
    kept = {key: record[key] for key in KEPT if key in record}
    failure = record.get("failure")
    if isinstance(failure, dict):
        kept["failure"] = {
            key: failure.get(key) for key in ("activity", "activity_type", "code", "message")
        }
        kept["monitor_url"] = record.get("monitor_url")
    return kept


@dataclass(frozen=True, slots=True)
class Percentiles:
    count: int
    p50: int
    p95: int
    max: int

    @classmethod
    def of(cls, values: Sequence[int]) -> Percentiles | None:
        if not values:
            return None
        ordered = sorted(values)
        return cls(
            len(ordered), _nearest_rank(ordered, 50), _nearest_rank(ordered, 95), ordered[-1]
        )

    def to_dict(self) -> dict[str, int]:
        return {"count": self.count, "p50": self.p50, "p95": self.p95, "max": self.max}


def _nearest_rank(ordered: Sequence[int], percent: int) -> int:
    # the nearest-rank percentile: always a value that occurred
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """Failed runs that share an activity error code, with one of them as the example."""

    code: str
    count: int
    activity: str
    example: str
    monitor_url: str


@dataclass(frozen=True, slots=True)
class PipelineOutcomes:
    factory: str
    pipeline: str
    outcomes: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class OutcomeSummary:
    outcomes: Mapping[str, int]
    pipelines: tuple[PipelineOutcomes, ...]
    failures: tuple[FailureGroup, ...]
    duration_ms: Percentiles | None
    queued_ms: Percentiles | None

    @property
    def failed(self) -> bool:
        """A followed run ended other than ``Succeeded``."""
        return any(self.outcomes.get(name, 0) for name in OUTCOMES[1:])

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcomes": dict(self.outcomes),
            "pipelines": [
                {"factory": p.factory, "pipeline": p.pipeline, "outcomes": dict(p.outcomes)}
                for p in self.pipelines
            ],
            "failures": [
                {
                    "code": f.code,
                    "count": f.count,
                    "activity": f.activity,
                    "example": f.example,
                    "monitor_url": f.monitor_url,
                }
                for f in self.failures
            ],
            "run_duration_ms": None if self.duration_ms is None else self.duration_ms.to_dict(),
            "queued_ms": None if self.queued_ms is None else self.queued_ms.to_dict(),
        }

    def sections(self) -> list[tuple[str, list[str], list[list[str]]]]:
        """(title, header, rows) of each table, in the form ``summary`` renders."""
        names = list(self.outcomes)
        timing = [
            [label, str(p.count), str(p.p50), str(p.p95), str(p.max)]
            for label, p in (("run duration", self.duration_ms), ("queue time", self.queued_ms))
            if p is not None
        ]
        return [
            (
                "Outcomes",
                ["outcome", "runs"],
                [[name, str(count)] for name, count in self.outcomes.items()],
            ),
            (
                "Outcomes by factory / pipeline",
                ["factory", "pipeline", *names],
                [
                    [p.factory, p.pipeline, *(str(p.outcomes.get(n, 0)) for n in names)]
                    for p in self.pipelines
                ],
            ),
            (
                "Failures by activity error code",
                ["code", "runs", "activity", "example message", "monitor"],
                [
                    [f.code, str(f.count), f.activity, f.example, f.monitor_url]
                    for f in self.failures
                ],
            ),
            ("Run times (ms)", ["", "runs", "p50", "p95", "max"], timing),
        ]


def summarize_outcomes(last: Iterable[Mapping[str, Any]]) -> OutcomeSummary | None:
    """Outcomes of the runs whose last lines are ``last``; ``None`` when none was followed."""
    counts: Counter[str] = Counter()
    by_pipeline: dict[tuple[str, str], Counter[str]] = {}
    failures: dict[str, list[Mapping[str, Any]]] = {}
    durations: list[int] = []
    queued: list[int] = []
    any_outcome = False
    for record in last:
        if record.get("status") != "succeeded":
            continue
        outcome = record.get("outcome")
        name = outcome if isinstance(outcome, str) else NOT_FOLLOWED
        any_outcome = any_outcome or isinstance(outcome, str)
        counts[name] += 1
        key = (str(record.get("factory", "")), str(record.get("pipeline", "")))
        by_pipeline.setdefault(key, Counter())[name] += 1
        if _is_int(record.get("run_duration_ms")) and outcome != "TimedOut":
            durations.append(record["run_duration_ms"])
        if _is_int(record.get("queued_ms")):
            queued.append(record["queued_ms"])
        failure = record.get("failure")
        if outcome == "Failed":
            code = failure.get("code") if isinstance(failure, dict) else None
            failures.setdefault(str(code or "unknown"), []).append(record)
    if not any_outcome:
        return None
    order = [*OUTCOMES, NOT_FOLLOWED]
    ordered = {name: counts[name] for name in order if counts[name] or name in OUTCOMES}
    return OutcomeSummary(
        outcomes=ordered,
        pipelines=tuple(
            PipelineOutcomes(factory, pipeline, {n: c[n] for n in ordered})
            for (factory, pipeline), c in sorted(by_pipeline.items())
        ),
        failures=tuple(
            _group(code, records)
            for code, records in sorted(failures.items(), key=lambda item: (-len(item[1]), item[0]))
        ),
        duration_ms=Percentiles.of(durations),
        queued_ms=Percentiles.of(queued),
    )


def _group(code: str, records: list[Mapping[str, Any]]) -> FailureGroup:
    example = records[0]
    failure = example.get("failure") if isinstance(example.get("failure"), dict) else {}
    failure = failure or {}
    activities = Counter(str((r.get("failure") or {}).get("activity") or "?") for r in records)
    return FailureGroup(
        code=code,
        count=len(records),
        activity=", ".join(name for name, _ in activities.most_common(3)),
        example=str(failure.get("message") or ""),
        monitor_url=str(example.get("monitor_url") or ""),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
