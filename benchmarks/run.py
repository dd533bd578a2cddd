"""``python -m benchmarks.run``: batchrun against the emulator and the SDK peer; prints the table.

Rows: ``throttled``, ``latency``, ``multi``, ``peer``, ``cpu``, ``memory``, ``faults``,
``lossy``, ``follow``, ``chain`` (see README.md). Each figure is the median of ``--reps``
samples (3; 1 with ``--quick``, which also shrinks every workload). Results go to
``benchmarks/results/latest.json`` (a full run) or ``partial.json`` (``--quick`` or ``--only``).
Exit status: 0 when every row ran (targets missed or not), 1 when a sample could not be taken.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.chain import chain_figures, chain_load, chain_sample
from benchmarks.follow import FollowLoad, FollowSample, follow_load, follow_sample
from benchmarks.harness import (
    ROOT,
    BenchError,
    Figure,
    Measured,
    Sample,
    Tls,
    batchrun_sample,
    compile_project,
    offline_sample,
    peer_sample,
    progress,
    wait_until_quiet,
)
from benchmarks.workloads import Workload, workloads

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

ROWS = (
    "throttled",
    "latency",
    "multi",
    "peer",
    "cpu",
    "memory",
    "faults",
    "lossy",
    "follow",
    "chain",
)
RESULTS = Path(__file__).resolve().parent / "results"
VALIDATE_LIMIT_S = 2.0
RSS_LIMIT_MB = 120.0
# issue 13: `batchrun watch` following 10,000 runs
FOLLOW_RSS_LIMIT_MB = 150.0
# issue 14: the latency row within this factor of the bare-aiohttp floor measured in the same run
FLOOR_FACTOR = 1.10


@dataclass(slots=True)
class Bench:
    workloads: dict[str, Workload]
    reps: int
    workdir: Path
    tls: Tls
    batchrun_tls: bool
    quiet_wait_s: float
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)
    offline: dict[str, list[Measured]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    quick: bool = False
    follow: list[FollowSample] = field(default_factory=list)

    def taken(self, workload: str, client: str) -> list[Sample]:
        """The samples of ``client`` on ``workload``, taken on first use."""
        key = (workload, client)
        if key not in self.samples:
            load = self.workloads[workload]
            self.samples[key] = [self._take(load, client, rep) for rep in range(self.reps)]
        return self.samples[key]

    def _take(self, workload: Workload, client: str, rep: int) -> Sample:
        tag = f"{workload.name}-{client}-{rep}"
        self.settle(tag)
        progress(f"{tag}: {workload.runs} runs")
        if client == "batchrun":
            manifest = self._input(workload, "yaml", workload.write_manifest)
            tls = self.tls if self.batchrun_tls else None
            sample = batchrun_sample(workload, manifest, tls=tls, workdir=self.workdir, tag=tag)
        else:
            runs = self._input(workload, "json", workload.write_runs_json)
            sample = peer_sample(
                client, workload, runs, tls=self.tls, workdir=self.workdir, tag=tag
            )
        created = (
            f"{sample.runs_created} created ({sample.duplicates} duplicates, "
            f"{sample.wrongly_failed} of the failed), "
            if workload.faults
            else ""
        )
        progress(
            f"{tag}: batch {sample.batch_wall_s:.2f}s, process {sample.process.wall_s:.2f}s, "
            f"cpu {sample.process.cpu_s:.2f}s, rss {sample.process.max_rss_mb:.0f} MB, "
            f"{sample.throttled}/{sample.requests} 429s, {sample.failed} failed, {created}"
            f"other processes {sample.foreign_cpu_share:.0%} of a core"
        )
        # the SDK's failures are a result (its retries gave up), and so are batchrun's under
        # injected faults (the faults row reports them); anyone else's are a bug
        if (client == "floor" or (client == "batchrun" and not workload.faults)) and (
            sample.failed or sample.succeeded != workload.runs
        ):
            raise BenchError(
                f"{tag}: {sample.succeeded} of {workload.runs} runs succeeded, "
                f"{sample.failed} failed {sample.extra or ''}"
            )
        return sample

    def settle(self, tag: str) -> None:
        if self.quiet_wait_s <= 0:
            return
        share = wait_until_quiet(limit_s=self.quiet_wait_s)
        if share >= 0.2:
            progress(f"{tag}: other processes still use {share:.0%} of a core; going ahead")

    def _input(self, workload: Workload, kind: str, write: Callable[[Path], Path]) -> Path:
        path = self.workdir / f"{workload.name}.{kind}"
        return path if path.exists() else write(path)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _seconds(value: float) -> str:
    return f"{value:.2f} s"


# --- rows ------------------------------------------------------------------------------------


def row_throttled(bench: Bench) -> list[Figure]:
    load = bench.workloads["throttled"]
    samples = bench.taken("throttled", "batchrun")
    ideal = load.ideal_s or 0.0
    wall = _median([s.batch_wall_s for s in samples])
    share = _median([s.throttled / s.requests for s in samples])
    count = _median([s.throttled for s in samples])
    requests = _median([s.requests for s in samples])
    return [
        Figure(
            "throttled",
            f"wall vs ideal {ideal:.1f} s",
            _seconds(wall),
            f"{wall / ideal:.3f}x",
            "≤ 1.05x",
            wall / ideal <= 1.05,
            {"wall_s": wall, "ideal_s": ideal, "ratio": wall / ideal},
        ),
        Figure(
            "throttled",
            "429s / createRun requests",
            f"{count:.0f} / {requests:.0f}",
            f"{share:.2%}",
            "≤ 1%",
            share <= 0.01,
            {"throttled": count, "requests": requests, "share": share},
        ),
    ]


def row_latency(bench: Bench) -> list[Figure]:
    load = bench.workloads["latency"]
    samples = bench.taken("latency", "batchrun")
    ideal = load.ideal_s or 0.0
    wall = _median([s.batch_wall_s for s in samples])
    peak = _median([s.peak_in_flight for s in samples])
    floor = _median([s.batch_wall_s for s in bench.taken("latency", "floor")])
    return [
        Figure(
            "latency",
            f"wall vs ideal {ideal:.2f} s",
            _seconds(wall),
            f"{wall / ideal:.3f}x",
            "",
            None,
            {"wall_s": wall, "ideal_s": ideal, "ratio": wall / ideal},
        ),
        Figure(
            "latency",
            "peak requests in flight (emulator)",
            f"{peak:.0f}",
            f"{peak / load.concurrency:.2f}",
            f"= {load.concurrency}",
            None,
            {"peak_in_flight": peak},
        ),
        Figure(
            "latency",
            "bare-aiohttp floor: wall vs ideal",
            _seconds(floor),
            f"{floor / ideal:.3f}x",
            "",
            None,
            {"wall_s": floor, "ratio": floor / ideal},
        ),
        Figure(
            "latency",
            "wall batchrun / floor (same run)",
            f"{wall:.2f} / {floor:.2f} s",
            f"{wall / floor:.3f}x",
            f"≤ {FLOOR_FACTOR:.2f}x",
            wall / floor <= FLOOR_FACTOR,
            {"ratio": wall / floor},
        ),
    ]


def row_multi(bench: Bench) -> list[Figure]:
    load = bench.workloads["multi"]
    samples = bench.taken("multi", "batchrun")
    wall = _median([s.batch_wall_s for s in samples])
    paced = load.runs - load.subscriptions * load.burst
    summed = load.subscriptions * load.refill
    rate = paced / wall
    share = _median([s.throttled / s.requests for s in samples])
    process_wall = _median([s.process.wall_s for s in samples])
    whole = paced / process_wall
    return [
        Figure(
            "multi",
            "rate vs summed refill, on the process's wall",
            f"{whole:.1f}/s",
            f"{whole / summed:.3f}",
            "≥ 0.95",
            whole / summed >= 0.95,
            {"process_wall_s": process_wall, "rate": whole, "ratio": whole / summed},
        ),
        Figure(
            "multi",
            "start-up: process wall - batch wall",
            _seconds(process_wall - wall),
            "",
            "",
            None,
            {"startup_s": process_wall - wall},
        ),
        Figure(
            "multi",
            f"rate vs summed refill {summed:.0f}/s (batch wall)",
            f"{rate:.1f}/s",
            f"{rate / summed:.3f}",
            "",
            None,
            {"wall_s": wall, "ideal_s": paced / summed, "rate": rate, "ratio": rate / summed},
        ),
        Figure(
            "multi",
            "429s / createRun requests",
            f"{_median([s.throttled for s in samples]):.0f} / "
            f"{_median([s.requests for s in samples]):.0f}",
            f"{share:.2%}",
            "",
            None,
            {"share": share},
        ),
    ]


def row_peer(bench: Bench) -> list[Figure]:
    figures: list[Figure] = []
    for name in ("throttled", "latency"):
        ours = bench.taken(name, "batchrun")
        theirs = bench.taken(name, "sdk")
        wall_b = _median([s.batch_wall_s for s in ours])
        wall_s = _median([s.batch_wall_s for s in theirs])
        t_b = _median([s.throttled for s in ours])
        t_s = _median([s.throttled for s in theirs])
        r_b = _median([s.requests for s in ours])
        r_s = _median([s.requests for s in theirs])
        sdk_failed = max(s.failed for s in theirs)
        figures += [
            Figure(
                "peer",
                f"{name}: wall batchrun / SDK",
                f"{wall_b:.2f} / {wall_s:.2f} s",
                f"{wall_b / wall_s:.3f}x",
                "",
                None,
                {"batchrun_wall_s": wall_b, "sdk_wall_s": wall_s, "ratio": wall_b / wall_s},
            ),
            Figure(
                "peer",
                f"{name}: 429s batchrun | SDK",
                f"{t_b:.0f} | {t_s:.0f}"
                + (f" (SDK: {sdk_failed} runs failed)" if sdk_failed else ""),
                f"{t_b / r_b:.1%} | {t_s / r_s:.1%}",
                "",
                None,
                {
                    "batchrun_429": t_b,
                    "sdk_429": t_s,
                    "batchrun_requests": r_b,
                    "sdk_requests": r_s,
                },
            ),
        ]
    return figures


def row_cpu(bench: Bench) -> list[Figure]:
    runs = bench.workloads["cpu"].runs
    small = bench.workloads["cpu-startup"].runs
    per_k: dict[str, float] = {}
    marginal: dict[str, float] = {}
    startup: dict[str, float] = {}
    rate: dict[str, float] = {}
    for client in ("batchrun", "sdk", "floor"):
        full = bench.taken("cpu", client)
        tiny = bench.taken("cpu-startup", client)
        cpu = _median([s.process.cpu_s for s in full])
        startup[client] = _median([s.process.cpu_s for s in tiny])
        per_k[client] = cpu / runs * 1000
        marginal[client] = (cpu - startup[client]) / (runs - small) * 1000
        rate[client] = runs / _median([s.batch_wall_s for s in full])
    ratio = per_k["batchrun"] / per_k["sdk"]
    m_ratio = marginal["batchrun"] / marginal["sdk"]
    return [
        Figure(
            "cpu",
            f"CPU s / 1,000 runs ({runs:,} runs) batchrun | SDK",
            f"{per_k['batchrun']:.2f} | {per_k['sdk']:.2f}",
            f"{ratio:.3f}",
            "≤ 0.5",
            ratio <= 0.5,
            {"batchrun": per_k["batchrun"], "sdk": per_k["sdk"], "ratio": ratio},
        ),
        Figure(
            "cpu",
            f"start-up CPU s ({small} runs) batchrun | SDK",
            f"{startup['batchrun']:.2f} | {startup['sdk']:.2f}",
            f"{startup['batchrun'] / startup['sdk']:.3f}",
            "",
            None,
            {"batchrun": startup["batchrun"], "sdk": startup["sdk"]},
        ),
        Figure(
            "cpu",
            "CPU ms / run past start-up batchrun | SDK",
            f"{marginal['batchrun']:.2f} | {marginal['sdk']:.2f}",
            f"{m_ratio:.3f}",
            "",
            None,
            {"batchrun": marginal["batchrun"], "sdk": marginal["sdk"], "ratio": m_ratio},
        ),
        Figure(
            "cpu",
            "bare-aiohttp floor: CPU ms / run past start-up",
            f"{marginal['floor']:.2f}",
            f"{marginal['floor'] / marginal['sdk']:.3f}",
            "",
            None,
            {"floor": marginal["floor"], "ratio_to_sdk": marginal["floor"] / marginal["sdk"]},
        ),
        Figure(
            "cpu",
            "throughput runs/s batchrun | SDK",
            f"{rate['batchrun']:.0f} | {rate['sdk']:.0f}",
            f"{rate['batchrun'] / rate['sdk']:.3f}",
            "",
            None,
            {"batchrun": rate["batchrun"], "sdk": rate["sdk"], "floor": rate["floor"]},
        ),
    ]


def row_memory(bench: Bench) -> list[Figure]:
    load = bench.workloads["memory"]
    manifest = bench.workdir / "memory.yaml"
    if not manifest.exists():
        load.write_manifest(manifest)
    for name, command in (
        ("validate", ["validate", str(manifest)]),
        # --endpoint: loopback, so nothing could leave even if --dry-run sent
        ("dry-run", ["run", str(manifest), "--dry-run", "--endpoint", "http://127.0.0.1:9"]),
    ):
        if name not in bench.offline:
            bench.offline[name] = []
            for rep in range(bench.reps):
                bench.settle(f"memory-{name}-{rep}")
                measured = offline_sample(
                    command, name=f"{name}-{rep}", timeout=300, workdir=bench.workdir
                )
                progress(
                    f"memory-{name}-{rep}: {measured.wall_s:.2f}s, rss {measured.max_rss_mb:.0f} MB"
                )
                bench.offline[name].append(measured)
    validate = _median([m.wall_s for m in bench.offline["validate"]])
    dry_rss = _median([m.max_rss_mb for m in bench.offline["dry-run"]])
    runs = bench.taken("memory", "batchrun")
    run_rss = _median([s.process.max_rss_mb for s in runs])
    rate = load.runs / _median([s.batch_wall_s for s in runs])
    n = f"{load.runs:,}"
    return [
        Figure(
            "memory",
            f"validate {n} runs (process wall)",
            _seconds(validate),
            f"{validate / VALIDATE_LIMIT_S:.3f}",
            f"≤ {VALIDATE_LIMIT_S:g} s",
            validate <= VALIDATE_LIMIT_S,
            {"validate_s": validate},
        ),
        Figure(
            "memory",
            f"run --dry-run {n}: peak RSS",
            f"{dry_rss:.0f} MB",
            f"{dry_rss / RSS_LIMIT_MB:.3f}",
            f"≤ {RSS_LIMIT_MB:g} MB",
            dry_rss <= RSS_LIMIT_MB,
            {"max_rss_mb": dry_rss},
        ),
        Figure(
            "memory",
            f"run {n} (emulator): peak RSS",
            f"{run_rss:.0f} MB",
            f"{run_rss / RSS_LIMIT_MB:.3f}",
            f"≤ {RSS_LIMIT_MB:g} MB",
            run_rss <= RSS_LIMIT_MB,
            {"max_rss_mb": run_rss, "runs_per_s": rate},
        ),
        Figure(
            "memory",
            f"run {n} (emulator): throughput",
            f"{rate:.0f} runs/s",
            "",
            "",
            None,
            {"runs_per_s": rate},
        ),
    ]


def row_faults(bench: Bench) -> list[Figure]:
    """The same seeded fault mix for batchrun and the SDK: what each reports, what ADF holds.

    Duplicates and runs wrongly reported failed are judged on the worst sample (any duplicate is
    a broken guarantee); the other figures are medians.
    """
    load = bench.workloads["faults"]
    n = load.runs
    figures: list[Figure] = []
    walls: dict[str, float] = {}
    for client, label in (("batchrun", "batchrun"), ("sdk", "SDK")):
        samples = bench.taken("faults", client)
        judged = client == "batchrun"
        succeeded = _median([s.succeeded for s in samples])
        failed = _median([s.failed for s in samples])
        walls[client] = _median([s.batch_wall_s for s in samples])
        figures.append(
            Figure(
                "faults",
                f"{label}: runs reported succeeded | failed ({n:,} runs)",
                f"{succeeded:.0f} | {failed:.0f}",
                f"{succeeded / n:.1%} | {failed / n:.1%}",
                "",
                None,
                {"succeeded": succeeded, "failed": failed, "runs": n},
            )
        )
        for measure, values in (
            ("duplicates (runs created twice)", [s.duplicates for s in samples]),
            ("reported failed, but created", [s.wrongly_failed for s in samples]),
        ):
            worst = max(values)
            middle = _median(values)
            shown = f"{worst}" if len(values) == 1 else f"{worst} (median {middle:.0f})"
            figures.append(
                Figure(
                    "faults",
                    f"{label}: {measure}",
                    shown,
                    f"{worst / n:.1%}",
                    "= 0" if judged else "",
                    worst == 0 if judged else None,
                    {"worst": worst, "median": middle},
                )
            )
        for sample in samples:
            # 0 <= wrongly_failed <= failed, unless a run was created that no manifest run asked
            # for or a run reported succeeded was never created
            if not 0 <= sample.wrongly_failed <= sample.failed:
                bench.notes.append(
                    f"faults/{client}: {sample.runs_created} runs created, {sample.duplicates} "
                    f"duplicates and {sample.succeeded} succeeded do not add up to a count of "
                    f"runs wrongly reported failed ({sample.wrongly_failed} of "
                    f"{sample.failed} failed)."
                )
        errors: Counter[str] = Counter()
        for sample in samples:
            errors.update(sample.extra.get("errors", {}))
        if errors:
            listed = ", ".join(f"{name} {count}" for name, count in errors.most_common())
            bench.notes.append(f"faults: the SDK's failures by error (all samples): {listed}.")
    figures.append(
        Figure(
            "faults",
            "wall batchrun / SDK",
            f"{walls['batchrun']:.2f} / {walls['sdk']:.2f} s",
            f"{walls['batchrun'] / walls['sdk']:.3f}x",
            "",
            None,
            {
                "batchrun_wall_s": walls["batchrun"],
                "sdk_wall_s": walls["sdk"],
                "ratio": walls["batchrun"] / walls["sdk"],
            },
        )
    )
    return figures


# createRun answers that leave it unknown whether the run was created
AMBIGUOUS = ("500", "502", "503", "504", "dropped")


def row_lossy(bench: Bench) -> list[Figure]:
    """Issue 14: lost answers and a 2 s visibility lag, batchrun with its default 30 s ceiling.

    batchrun's wall against the SDK's (which does not wait for anything, and pays in duplicates
    and orphans), and the reads batchrun spent per ambiguous answer.
    """
    load = bench.workloads["lossy"]
    n = load.runs
    ours = bench.taken("lossy", "batchrun")
    theirs = bench.taken("lossy", "sdk")
    wall_b = _median([s.batch_wall_s for s in ours])
    wall_s = _median([s.batch_wall_s for s in theirs])
    ambiguous = _median(
        [sum(s.extra["create_run_answers"].get(k, 0) for k in AMBIGUOUS) for s in ours]
    )
    reads = _median([s.reads for s in ours])
    per = reads / ambiguous if ambiguous else 0.0
    dup_b, orphan_b = max(s.duplicates for s in ours), max(s.wrongly_failed for s in ours)
    dup_s = _median([s.duplicates for s in theirs])
    orphan_s = _median([s.wrongly_failed for s in theirs])
    windows = sorted({s.extra.get("window", "") for s in ours} - {""})
    return [
        Figure(
            "lossy",
            "wall batchrun / SDK",
            f"{wall_b:.2f} / {wall_s:.2f} s",
            f"{wall_b / wall_s:.3f}x",
            "≤ 2x",
            wall_b / wall_s <= 2.0,
            {"batchrun_wall_s": wall_b, "sdk_wall_s": wall_s, "ratio": wall_b / wall_s},
        ),
        Figure(
            "lossy",
            f"batchrun: duplicates | orphans ({n:,} runs)",
            f"{dup_b} | {orphan_b}",
            f"{dup_b / n:.1%} | {orphan_b / n:.1%}",
            "= 0",
            dup_b == 0 and orphan_b == 0,
            {"duplicates": dup_b, "orphans": orphan_b},
        ),
        Figure(
            "lossy",
            f"SDK: duplicates | orphans ({n:,} runs)",
            f"{dup_s:.0f} | {orphan_s:.0f}",
            f"{dup_s / n:.1%} | {orphan_s / n:.1%}",
            "",
            None,
            {"duplicates": dup_s, "orphans": orphan_s},
        ),
        Figure(
            "lossy",
            "batchrun: reads / ambiguous answer",
            f"{reads:.0f} / {ambiguous:.0f}",
            f"{per:.2f}",
            "≤ 1.5",
            per <= 1.5,
            {"reads": reads, "ambiguous": ambiguous, "ratio": per},
        ),
        Figure(
            "lossy",
            "batchrun: learned window (ceiling 30 s)",
            "; ".join(windows) or "none reported",
            "",
            "",
            None,
            {},
        ),
    ]


def row_follow(bench: Bench) -> list[Figure]:
    """Issue 13: `batchrun watch` following every run of a report, and the SDK way beside it."""
    load = follow_load(quick=bench.quick)
    if not bench.follow:
        for rep in range(bench.reps):
            tag = f"follow-{rep}"
            bench.settle(tag)
            progress(f"{tag}: {load.runs} runs over {load.factories} factories")
            sample = follow_sample(load, tls=bench.tls, workdir=bench.workdir, tag=tag)
            lag = max(sample.lags_s, default=0.0)
            failed_lag = max(sample.failed_lags_s, default=0.0)
            progress(
                f"{tag}: trigger {sample.trigger.wall_s:.1f}s, watch {sample.watch.wall_s:.1f}s "
                f"({sample.polls} polls, {sample.query_reads} queries, max lag {lag:.2f}s, "
                f"of a Failed run {failed_lag:.2f}s), "
                f"rss {sample.watch.max_rss_mb:.0f} MB, SDK {sample.sdk['read']} GETs in "
                f"{sample.sdk['wall_s']:.1f}s, other processes "
                f"{sample.foreign_cpu_share:.0%} of a core"
            )
            bench.follow.append(sample)
    return follow_figures(load, bench.follow, bench.notes)


def follow_figures(
    load: FollowLoad, samples: Sequence[FollowSample], notes: list[str]
) -> list[Figure]:
    """The row from its samples: reads per poll, 429s and RSS judged on the worst sample, how
    late an end reaches the report on the worst line of all; the SDK way for information."""
    n, f = f"{load.runs:,}", load.factories
    per_poll = [s.query_reads / s.polls for s in samples if s.polls]
    worst_per_poll = max(per_poll, default=0.0)
    throttled = max(s.query_throttled + s.activity_throttled for s in samples)
    reads = max(s.query_reads + s.activity_reads for s in samples)
    lags = sorted(lag for s in samples for lag in s.lags_s)
    worst_lag = lags[-1] if lags else float("inf")
    lag_limit = load.poll_s + 1.0
    failed_lags = sorted(lag for s in samples for lag in s.failed_lags_s)
    before = max(s.ended_before_watch for s in samples)
    rss = max(s.watch.max_rss_mb for s in samples)
    polls = _median([s.polls for s in samples])
    failed = _median([s.outcomes.get("Failed", 0) for s in samples])
    activity = _median([s.activity_reads for s in samples])
    # the SDK way: one GET per run per poll, against the same read budget
    # polling on and on, the burst is spent once: each poll costs its reads' refill time
    sdk_poll_s = load.runs / load.read_refill
    ours_poll_s = worst_per_poll / load.read_refill
    sdk = [s.sdk for s in samples]
    sample_n = int(_median([x["read"] + x["failed"] for x in sdk]))
    sample_wall = _median([x["wall_s"] for x in sdk])
    sample_429 = _median([x["throttled"] for x in sdk])
    sample_failed = _median([x["failed"] for x in sdk])
    rate = sample_n / sample_wall if sample_wall else 0.0
    # the sample's first read_burst GETs are answered at once; past them the refill sets the
    # pace, and polling on and on a poll of every run gets no burst
    paced = sample_n - load.read_burst
    sustained = paced / sample_wall if paced > 0 and sample_wall else 0.0
    measured_poll_s = load.runs / sustained if sustained else float("inf")
    if before:
        notes.append(
            f"follow: {before} runs ended before `batchrun watch` started (the trigger took "
            "longer than their run); their lag is not counted."
        )
    return [
        Figure(
            "follow",
            f"queryPipelineRuns / poll ({n} runs, {f} factories)",
            f"{worst_per_poll:.1f} ({polls:.0f} polls)",
            f"{worst_per_poll / load.reads_bound:.3f}",
            f"≤ {f} x {load.pages_per_factory} = {load.reads_bound}",
            worst_per_poll <= load.reads_bound,
            {"per_poll": worst_per_poll, "bound": load.reads_bound, "polls": polls},
        ),
        Figure(
            "follow",
            "429s on reads / reads (queries + activity runs)",
            f"{throttled} / {reads}",
            f"{throttled / reads:.2%}" if reads else "",
            "= 0",
            throttled == 0,
            {"throttled": throttled, "reads": reads},
        ),
        Figure(
            "follow",
            f"end in report after run_end: p50 | max (--poll {load.poll_s:g})",
            f"{_median(lags):.2f} | {worst_lag:.2f} s" if lags else "none",
            f"{worst_lag / lag_limit:.3f}",
            f"≤ {lag_limit:g} s",
            bool(lags) and worst_lag <= lag_limit,
            {"p50_s": _median(lags) if lags else 0.0, "max_s": worst_lag, "ended_before": before},
        ),
        Figure(
            "follow",
            "  of which runs that ended Failed: p50 | max",
            f"{_median(failed_lags):.2f} | {failed_lags[-1]:.2f} s" if failed_lags else "none",
            "",
            "",
            None,
            {
                "p50_s": _median(failed_lags) if failed_lags else 0.0,
                "max_s": max(failed_lags, default=0.0),
            },
        ),
        Figure(
            "follow",
            "batchrun watch: peak RSS",
            f"{rss:.0f} MB",
            f"{rss / FOLLOW_RSS_LIMIT_MB:.3f}",
            f"≤ {FOLLOW_RSS_LIMIT_MB:g} MB",
            rss <= FOLLOW_RSS_LIMIT_MB,
            {"max_rss_mb": rss},
        ),
        Figure(
            "follow",
            "queryActivityruns / runs ended Failed",
            f"{activity:.0f} / {failed:.0f}",
            f"{activity / failed:.2f}" if failed else "",
            "",
            None,
            {"activity_reads": activity, "failed": failed},
        ),
        Figure(
            "follow",
            "SDK way: GETs / poll vs batchrun's reads / poll",
            f"{load.runs:,} vs {worst_per_poll:.1f}",
            f"{load.runs / worst_per_poll:.0f}x" if worst_per_poll else "",
            "",
            None,
            {"sdk_gets": load.runs, "batchrun_reads": worst_per_poll},
        ),
        Figure(
            "follow",
            f"read budget one poll uses (refill {load.read_refill:g}/s): SDK | batchrun",
            f"{sdk_poll_s:.0f} s | {ours_poll_s:.2f} s",
            f"{sdk_poll_s / load.poll_s:.0f}x --poll | {ours_poll_s / load.poll_s:.2f}x",
            "",
            None,
            {"sdk_poll_s": sdk_poll_s, "batchrun_poll_s": ours_poll_s},
        ),
        Figure(
            "follow",
            f"SDK measured: one poll of {sample_n:,} GETs (429s, failed)",
            f"{sample_wall:.2f} s ({sample_429:.0f}, {sample_failed:.0f})",
            f"{rate:.0f} GETs/s",
            "",
            None,
            {"wall_s": sample_wall, "throttled": sample_429, "failed": sample_failed},
        ),
        Figure(
            "follow",
            f"SDK measured, past the burst: {n} GETs at {sustained:.1f}/s",
            f"{measured_poll_s:.0f} s / poll",
            f"{measured_poll_s / load.poll_s:.0f}x --poll",
            "",
            None,
            {"poll_s": measured_poll_s},
        ),
    ]


def row_chain(bench: Bench) -> list[Figure]:
    """Issue 15: a night with an order, built and judged in benchmarks/chain.py."""
    load = chain_load(quick=bench.quick)
    samples = []
    for rep in range(bench.reps):
        bench.settle(f"chain-{rep}")
        samples.append(chain_sample(load, tls=bench.tls, workdir=bench.workdir, tag=f"chain-{rep}"))
    return chain_figures(load, samples)


ROW_FUNCTIONS: dict[str, Callable[[Bench], list[Figure]]] = {
    "throttled": row_throttled,
    "latency": row_latency,
    "multi": row_multi,
    "peer": row_peer,
    "cpu": row_cpu,
    "memory": row_memory,
    "faults": row_faults,
    "lossy": row_lossy,
    "follow": row_follow,
    "chain": row_chain,
}


# --- output ----------------------------------------------------------------------------------

HEADER = ("row", "measure", "value", "ratio", "target", "result")


def render_table(figures: Sequence[Figure]) -> str:
    rows = [HEADER] + [(f.row, f.measure, f.value, f.ratio, f.target, f.verdict) for f in figures]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo")
    models = []
    if cpuinfo.exists():
        models = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        memory = meminfo.read_text().splitlines()[0].split(":", 1)[1].strip()
    return {
        "cpu_model": models[0] if models else platform.processor(),
        "cpu_count": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def _notes(bench: Bench) -> list[str]:
    notes = [
        f"{os.cpu_count()} CPUs shared by the client, the emulator and this harness: "
        "figures that need CPU (latency, cpu, memory throughput) include that contention.",
        "wall = first run started to last answer (batchrun: from its report; SDK: timed around "
        "its gather), so interpreter start-up and the token fetch are not in it; process wall "
        "times are in the JSON.",
        "transport: the SDK over https (it refuses bearer tokens over http); batchrun over "
        + ("https too, the same emulator and CA." if bench.batchrun_tls else "http."),
    ]
    busy: list[str] = []
    for (workload, client), samples in sorted(bench.samples.items()):
        wall = _median([s.batch_wall_s for s in samples])
        if workload != "cpu-startup" and wall:
            share = _median([s.emulator_cpu_s for s in samples]) / wall
            busy.append(f"{workload}/{client} {share:.0%}")
    foreign = [s.foreign_cpu_share for group in bench.samples.values() for s in group]
    if foreign and max(foreign) > 0.1:
        notes.append(
            "processes outside the bench used up to "
            f"{max(foreign):.0%} of a core during a sample (median {_median(foreign):.0%}): "
            "CPU-bound figures are pessimistic by about that much."
        )
    if busy:
        notes.append(
            "emulator CPU over the batch, as a share of one core (near 100% it is the "
            "bottleneck): " + ", ".join(busy) + "."
        )
    return notes + bench.notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 repetition, smaller workloads")
    parser.add_argument(
        "--only", action="append", choices=ROWS, metavar="NAME", help=f"rows: {', '.join(ROWS)}"
    )
    parser.add_argument("--reps", type=int, help="repetitions per figure (default 3; 1 --quick)")
    parser.add_argument(
        "--batchrun-http",
        action="store_true",
        help="batchrun talks http to the emulator (default: https, like the SDK)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="before each sample, wait up to this long for other processes to go idle "
        "(default 120; 0 does not wait)",
    )
    parser.add_argument("--output", type=Path, help="JSON results path")
    args = parser.parse_args(argv)
    rows = args.only or list(ROWS)
    reps = args.reps or (1 if args.quick else 3)
    partial = args.quick or args.only is not None
    output = args.output or RESULTS / ("partial.json" if partial else "latest.json")

    started = time.perf_counter()
    compile_project()
    figures: list[Figure] = []
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="batchrun-bench-") as tmp:
        workdir = Path(tmp)
        bench = Bench(
            workloads(quick=args.quick),
            reps,
            workdir,
            Tls.create(workdir),
            batchrun_tls=not args.batchrun_http,
            quiet_wait_s=args.quiet_wait,
            quick=args.quick,
        )
        for row in rows:
            print(f"{row}…", file=sys.stderr, flush=True)
            try:
                figures += ROW_FUNCTIONS[row](bench)
            except BenchError as exc:
                errors[row] = str(exc)
                print(f"{row}: ERROR {exc}", file=sys.stderr)
        notes = _notes(bench)

    table = render_table(figures)
    print()
    print(table)
    for row, message in errors.items():
        print(f"{row}: ERROR: {message.splitlines()[0]}")
    print()
    for note in notes:
        print(f"note: {note}")
    info = machine()
    print(
        f"\nmachine: {info['cpu_model']} x {info['cpu_count']}, Python {info['python']}; "
        f"median of {reps}{' (quick)' if args.quick else ''}; "
        f"{time.perf_counter() - started:.0f} s"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "quick": args.quick,
        "reps": reps,
        "batchrun_transport": "https" if bench.batchrun_tls else "http",
        "workloads": {name: asdict(w) for name, w in bench.workloads.items()},
        "figures": [{**asdict(f), "verdict": f.verdict} for f in figures],
        "samples": [s.as_json() for group in bench.samples.values() for s in group],
        "follow_samples": [s.as_json() for s in bench.follow],
        "offline_samples": {
            name: [asdict(m) for m in measured] for name, measured in bench.offline.items()
        },
        "errors": errors,
        "notes": notes,
        "table": table,
    }
    output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"results: {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
