"""The follow row's own logic: its inputs, how it reads the report, how it judges the figures."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING

from batchrun.emulator.config import load_config
from batchrun.manifest.loader import load_manifest
from benchmarks.follow import FollowLoad, FollowSample, ReportTail, lags_s, parse_seen
from benchmarks.harness import Measured
from benchmarks.run import follow_figures

if TYPE_CHECKING:
    from pathlib import Path

LOAD = FollowLoad(60, 4, durations_ms=(2000, 5000), poll_s=5.0, sdk_sample=300)


def _line(run: str, *, outcome: str | None = None, run_end: str | None = None) -> bytes:
    entry: dict[str, object] = {"id": run, "status": "succeeded"}
    if outcome is not None:
        entry |= {"outcome": outcome, "run_end": run_end}
    return json.dumps(entry).encode() + b"\n"


def test_manifest_spreads_the_runs_over_every_factory_and_pipeline(tmp_path: Path) -> None:
    manifest = load_manifest(LOAD.write_manifest(tmp_path / "m.yaml"), environ={})

    assert len(manifest.runs) == 60
    assert Counter(run.factory for run in manifest.runs) == {f"follow-0{n}": 15 for n in range(4)}
    # every factory runs every pipeline, so run lengths spread within each factory
    assert {(run.factory, run.pipeline) for run in manifest.runs} == {
        (f"follow-0{n}", name) for n in range(4) for name in ("Follow002s", "Follow005s")
    }


def test_config_gives_each_pipeline_its_run_length_and_the_read_budget(tmp_path: Path) -> None:
    config = load_config(LOAD.write_config(tmp_path / "emulator.json"))

    assert len(config.topology.factories) == 4
    for factory in config.topology.factories.values():
        lengths = {p.name: p.duration_ms for p in factory.pipelines.values()}
        assert lengths == {"Follow002s": 2000, "Follow005s": 5000}
    assert config.settings["read_burst"] == 250
    assert config.settings["read_refill"] == 25.0


def test_bound_is_every_page_of_every_factory() -> None:
    # 10,000 runs over 20 factories: 500 a factory, 5 pages of 100
    assert FollowLoad(10_000, 20, durations_ms=(1,)).reads_bound == 100
    assert FollowLoad(1001, 5, durations_ms=(1,)).reads_bound == 15


def test_only_outcome_lines_are_seen() -> None:
    seen = parse_seen(
        [_line("a").rstrip(), b"", _line("b", outcome="Failed", run_end="2026-01-01T00:00:01Z")],
        12.5,
    )

    assert [(s.id, s.outcome, s.seen_at) for s in seen] == [("b", "Failed", 12.5)]


def test_lag_counts_runs_that_ended_while_watched() -> None:
    # 2026-01-01T00:00:10Z
    since = 1767225610.0
    seen = parse_seen(
        [
            _line("early", outcome="Succeeded", run_end="2026-01-01T00:00:05Z").rstrip(),
            _line("late", outcome="Succeeded", run_end="2026-01-01T00:00:20.500Z").rstrip(),
            _line("never", outcome="TimedOut").rstrip(),
        ],
        since + 12.0,
    )

    lags, before = lags_s(seen, since=since)

    assert lags == [1.5]
    assert before == 1


def test_tail_sees_only_lines_appended_after_it_started(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    report.write_bytes(_line("old", outcome="Succeeded", run_end="2026-01-01T00:00:00Z"))
    line = _line("new", outcome="Failed", run_end="2026-01-01T00:00:01Z")
    with ReportTail(report) as tail, report.open("ab") as out:
        out.write(line[:10])
        out.flush()
        out.write(line[10:])
    # leaving the context reads what is left, so the seen lines do not depend on timing
    assert [s.id for s in tail.seen] == ["new"]


def _sample(*, throttled: int = 0, lag: float = 1.0, rss: float = 80.0) -> FollowSample:
    process = Measured(0, 10.0, 1.0, rss)
    return FollowSample(
        runs=60,
        factories=4,
        trigger=process,
        watch=process,
        outcomes={"Succeeded": 57, "Failed": 3},
        polls=10,
        query_reads=30,
        query_throttled=throttled,
        activity_reads=3,
        activity_throttled=0,
        lags_s=[0.5, lag],
        ended_before_watch=0,
        failed_lags_s=[lag],
        emulator_cpu_s=0.5,
        foreign_cpu_share=0.0,
        sdk={"read": 300, "failed": 0, "wall_s": 2.0, "throttled": 40},
    )


def test_figures_pass_within_the_targets() -> None:
    figures = follow_figures(LOAD, [_sample()], [])

    judged = {f.measure.split(" (")[0]: f.ok for f in figures if f.ok is not None}
    assert judged == {
        "queryPipelineRuns / poll": True,
        "429s on reads / reads": True,
        "end in report after run_end: p50 | max": True,
        "batchrun watch: peak RSS": True,
    }
    # the SDK way reads every run each poll: 60 GETs against batchrun's 3 queries
    contrast = next(f for f in figures if f.measure.startswith("SDK way"))
    assert contrast.ratio == "20x"


def test_figures_miss_on_the_worst_sample() -> None:
    figures = follow_figures(LOAD, [_sample(), _sample(throttled=1, lag=6.5, rss=151.0)], [])

    missed = sorted(f.measure.split(" (")[0] for f in figures if f.ok is False)
    assert missed == [
        "429s on reads / reads",
        "batchrun watch: peak RSS",
        "end in report after run_end: p50 | max",
    ]
