"""The chain row's own logic: its inputs, how it reads the night back, how it judges the figures."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from batchrun.emulator.config import load_config
from batchrun.manifest.loader import load_manifest
from benchmarks.chain import (
    ChainLoad,
    ChainSample,
    Flow,
    chain_figures,
    flow,
    percentile,
    polls_of,
    trigger_lines,
)
from benchmarks.harness import BenchError, Measured
from benchmarks.workloads import subscription_id

if TYPE_CHECKING:
    from pathlib import Path

LOAD = ChainLoad(6, load_ms=(2000, 4000, 6000), build_ms=1000, export_ms=500, queued_ms=100)


def test_builds_need_their_own_days_load_and_the_export_every_build(tmp_path: Path) -> None:
    manifest = load_manifest(LOAD.write_manifest(tmp_path / "m.yaml"), environ={})

    assert len(manifest.runs) == LOAD.runs == 13
    assert manifest.needs["build.01.2025-01-05"] == ("load.01.2025-01-05",)
    assert len(manifest.needs["export"]) == 6
    assert all(need.startswith("build.") for need in manifest.needs["export"])
    # every day once, each load pipeline on every third day
    loads = [run for run in manifest.runs if run.id.startswith("load.")]
    assert sorted(run.parameters["run_date"] for run in loads) == [
        f"2025-01-0{day}" for day in range(1, 7)
    ]
    assert Counter(run.pipeline for run in loads) == {"Load00": 2, "Load01": 2, "Load02": 2}
    # loads in one subscription, builds and the export in another
    assert {run.subscription for run in loads} == {subscription_id(0)}
    assert {run.subscription for run in manifest.runs if run not in loads} == {subscription_id(1)}


def test_config_gives_each_pipeline_its_length_and_keeps_arms_read_budget(
    tmp_path: Path,
) -> None:
    config = load_config(LOAD.write_config(tmp_path / "emulator.json"))

    lengths = {
        pipeline.name: (pipeline.queued_ms, pipeline.duration_ms)
        for factory in config.topology.factories.values()
        for pipeline in factory.pipelines.values()
    }
    assert lengths == {
        "Load00": (100, 2000),
        "Load01": (100, 4000),
        "Load02": (100, 6000),
        "BuildMart": (100, 1000),
        "ExportMarts": (100, 500),
    }
    assert config.settings["read_burst"] == 250
    assert config.settings["read_refill"] == 25.0


def test_days_must_split_over_the_load_pipelines() -> None:
    with pytest.raises(ValueError, match="7 days do not split over 3 loads"):
        ChainLoad(7, load_ms=(1, 2, 3))


def test_bounds_are_the_critical_path_and_one_listing_of_each_factory() -> None:
    # 3 x 100 ms queued + 6 s + 1 s + 0.5 s; two handoffs at --poll + 1 s
    assert LOAD.ideal_s == pytest.approx(7.8)
    assert LOAD.wall_bound_s == pytest.approx(19.8)
    # 300 loads: 3 pages; 300 builds and the export: 4 pages
    assert ChainLoad(300).reads_bound == 7
    assert ChainLoad(300).ideal_s == 48.0


def test_polls_are_bursts_of_queries_apart() -> None:
    samples = [
        (0.0, 0, 0),
        (0.1, 2, 0),
        (0.2, 3, 0),  # the same poll's next page
        (0.4, 3, 0),
        (1.3, 5, 0),  # a pause: the next poll
        (1.4, 5, 0),
        (2.0, 6, 0),
    ]

    assert polls_of(samples) == 3
    assert polls_of(samples, gap_s=1.0) == 2
    assert polls_of([(0.0, 4, 0)]) == 0


def _run(run_id: str, start: float, end: float) -> dict[str, Any]:
    def stamp(seconds: float) -> str:
        return f"2026-01-01T00:00:{seconds:09.6f}Z"

    return {"runId": run_id, "runStart": stamp(start), "runEnd": stamp(end)}


def test_flow_pairs_each_build_with_its_days_load() -> None:
    triggers = {
        "load.00.D1": "l1",
        "load.01.D2": "l2",
        "build.00.D1": "b1",
        "build.01.D2": "b2",
        "export": "e",
    }
    runs = {
        "l1": _run("l1", 1.0, 10.0),
        "l2": _run("l2", 1.5, 20.0),
        "b1": _run("b1", 10.25, 12.0),
        "b2": _run("b2", 21.0, 25.0),
        "e": _run("e", 26.5, 30.0),
    }

    night = flow(triggers, runs)

    assert night.build_handoffs_s == pytest.approx([0.25, 1.0])
    assert night.export_handoff_s == pytest.approx(1.5)
    assert night.wall_s == pytest.approx(29.0)


def test_flow_refuses_a_run_adf_does_not_have() -> None:
    with pytest.raises(BenchError, match="run e is not in ADF"):
        flow(
            {"load.a": "l", "build.a": "b", "export": "e"},
            {"l": _run("l", 0, 1), "b": _run("b", 2, 3)},
        )


def test_trigger_lines_skip_outcomes_and_refuse_a_run_triggered_twice(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    lines = [
        {"id": "load.a", "status": "succeeded", "run_id": "l"},
        {"id": "load.a", "status": "succeeded", "run_id": "l", "outcome": "Succeeded"},
        {"id": "build.a", "status": "succeeded", "run_id": "b"},
    ]
    report.write_text("".join(json.dumps(line) + "\n" for line in lines))

    assert trigger_lines(report) == {"load.a": "l", "build.a": "b"}

    with report.open("a") as out:
        out.write(json.dumps(lines[0]) + "\n")
    with pytest.raises(BenchError, match=r"load\.a has two trigger lines"):
        trigger_lines(report)


def test_trigger_lines_refuse_a_skipped_run(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    line = {"id": "build.a", "status": "skipped", "run_id": None, "reason": "needs load.a, …"}
    report.write_text(json.dumps(line) + "\n")

    with pytest.raises(BenchError, match=r"build\.a was not triggered: needs load\.a"):
        trigger_lines(report)


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 21)]

    assert percentile(values, 0.5) == 10.0
    assert percentile(values, 0.95) == 19.0
    assert percentile([3.0], 0.95) == 3.0


def _sample(
    *, handoff: float = 0.5, export: float = 1.0, wall: float = 9.0, throttled: int = 0
) -> ChainSample:
    return ChainSample(
        days=6,
        process=Measured(0, 8.0, 1.0, 70.0),
        flow=Flow([0.2, 0.3, handoff], export, wall),
        polls=10,
        query_reads=15,
        query_throttled=throttled,
        create_runs=13,
        runs_created=13,
        duplicates=0,
        emulator_cpu_s=0.5,
        foreign_cpu_share=0.0,
    )


def _judged(samples: list[ChainSample]) -> dict[str, bool | None]:
    return {f.measure.split(" (")[0]: f.ok for f in chain_figures(LOAD, samples)}


def test_figures_pass_within_the_bounds() -> None:
    figures = chain_figures(LOAD, [_sample()])

    assert {f.measure.split(" (")[0]: f.ok for f in figures if f.ok is not None} == {
        "build created after its load's end": True,
        "export created after the last build's end": True,
        "night": True,
        "queryPipelineRuns / poll": True,
        "429s on reads / queryPipelineRuns": True,
        "createRun requests / runs": True,
    }
    handoffs = figures[0]
    assert handoffs.value == "0.30 | 0.50 | 0.50 s"
    assert handoffs.median["n"] == 3


def test_figures_miss_on_the_worst_sample() -> None:
    worst = _sample(handoff=6.5, export=7.0, wall=20.0, throttled=2)

    judged = _judged([_sample(), worst])

    assert sorted(name for name, ok in judged.items() if ok is False) == [
        "429s on reads / queryPipelineRuns",
        "build created after its load's end",
        "export created after the last build's end",
        "night",
    ]


def test_a_duplicate_creation_misses() -> None:
    sample = _sample()
    sample.duplicates = 1

    assert _judged([sample])["createRun requests / runs"] is False
