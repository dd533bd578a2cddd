"""The ``chain`` row: a night with an order (issue 15), ``needs`` per day over two subscriptions.

One emulator per sample: a ``loads`` factory in one subscription, a ``marts`` factory in
another, ARM's default read budget (the write budget is raised: writes are not what this row
measures). The manifest has ``dates:`` over N days: each day's load (20 pipelines running from 10
to 30 s, each every 20th day, so the loads end in 20 waves and the per-day handoffs spread over
the night), each day's build (``needs`` its own day's load), and one export that needs
every build. ``batchrun run MANIFEST --poll 5`` (no ``--wait``) runs it as its own process
(peak RSS, CPU), while a thread samples the emulator's request counts to tell its polls apart.

Afterwards the emulator's own clock says how the night flowed: each build was created
(``runStart``) how long after its load ended (``runEnd``), the export how long after the last
build, and the first load's creation to the export's end against the critical path.
"""

from __future__ import annotations

import itertools
import json
import math
import ssl
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from batchrun.times import parse_time
from benchmarks.harness import (
    BenchError,
    Figure,
    Measured,
    batchrun_env,
    measure_to_files,
    progress,
    serve_config,
    tail,
    write_reads_config,
)
from benchmarks.workloads import RESOURCE_GROUP, subscription_id

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from batchrun.emulator.process import EmulatorProcess
    from benchmarks.harness import Tls

# queryPipelineRuns answers at most this many runs a page (ADF's and the emulator's page)
PAGE_SIZE = 100
LOADS_FACTORY = "loads"
MARTS_FACTORY = "marts"
BUILD_PIPELINE = "BuildMart"
EXPORT_PIPELINE = "ExportMarts"
# the monitor waits at least 1 s between polls and a poll's pages follow each other within
# milliseconds: a pause this long in the queries is the gap between two polls
POLL_GAP_S = 0.5
_TRACE_EVERY_S = 0.05
_SEED = "15"
_START = date(2025, 1, 1)
_TERMINAL = ("Succeeded", "Failed", "Cancelled")
# 20 load lengths from 10 to 30 s: the loads end in 20 waves a second apart, so the handoffs
# meet the monitor's polls at every point of their interval
LOAD_MS = tuple(10_000 + n * 20_000 // 19 for n in range(20))


@dataclass(frozen=True, slots=True)
class ChainLoad:
    """``days`` days of load → build (per day), then one export after every build."""

    days: int
    # one load pipeline per length; day n runs load pipeline n % len(load_ms)
    load_ms: tuple[int, ...] = LOAD_MS
    build_ms: int = 10_000
    export_ms: int = 5_000
    queued_ms: int = 1_000
    # `run --poll`: the longest wait between polls, and so the bound on a handoff
    poll_s: float = 5.0
    # ARM's default per-subscription read bucket (the emulator's defaults)
    read_burst: int = 250
    read_refill: float = 25.0

    def __post_init__(self) -> None:
        if self.days % len(self.load_ms):
            raise ValueError(f"{self.days} days do not split over {len(self.load_ms)} loads")

    @property
    def runs(self) -> int:
        return 2 * self.days + 1

    @property
    def tags(self) -> tuple[str, ...]:
        """Each load pipeline's number, as its entry's id ends: ``load.07`` (runs
        ``load.07.2025-01-08``…), ``build.07``."""
        return tuple(f"{n:02d}" for n in range(len(self.load_ms)))

    @property
    def ideal_s(self) -> float:
        """The critical path: the longest load, its build, the export, each queued first."""
        path_ms = 3 * self.queued_ms + max(self.load_ms) + self.build_ms + self.export_ms
        return path_ms / 1000

    @property
    def handoff_bound_s(self) -> float:
        """A dependent is created within one poll interval of its need's end, + 1 s."""
        return self.poll_s + 1.0

    @property
    def wall_bound_s(self) -> float:
        """The critical path plus its two handoffs at their bound."""
        return self.ideal_s + 2 * self.handoff_bound_s

    @property
    def reads_bound(self) -> int:
        """queryPipelineRuns per poll allowed: one full listing of each factory followed."""
        return math.ceil(self.days / PAGE_SIZE) + math.ceil((self.days + 1) / PAGE_SIZE)

    @property
    def timeout_s(self) -> float:
        return 120.0 + 3 * self.wall_bound_s + self.runs / 20

    def dates(self, n: int) -> str:
        """The ``dates:`` of load pipeline ``n``: every len(load_ms)-th day from day n."""
        step = len(self.load_ms)
        first = _START + timedelta(days=n)
        last = _START + timedelta(days=self.days - step + n)
        return f'{{from: "{first}", to: "{last}", step: {step}d, parameter: run_date}}'

    def write_config(self, path: Path) -> Path:
        """The emulator's topology: loads in subscription 0, marts in subscription 1."""
        queued = {"queued_ms": self.queued_ms}
        loads = {
            f"Load{tag}": queued | {"duration_ms": ms}
            for tag, ms in zip(self.tags, self.load_ms, strict=True)
        }
        marts = {
            BUILD_PIPELINE: queued | {"duration_ms": self.build_ms},
            EXPORT_PIPELINE: queued | {"duration_ms": self.export_ms},
        }
        factories = {
            subscription_id(0): {LOADS_FACTORY: loads},
            subscription_id(1): {MARTS_FACTORY: marts},
        }
        return write_reads_config(
            path, factories, read_burst=self.read_burst, read_refill=self.read_refill
        )

    def write_manifest(self, path: Path) -> Path:
        loads = f"subscription: {subscription_id(0)}, factory: {LOADS_FACTORY}"
        marts = f"subscription: {subscription_id(1)}, factory: {MARTS_FACTORY}"
        lines = ["version: 1", f"defaults: {{resource_group: {RESOURCE_GROUP}}}", "runs:"]
        for n, tag in enumerate(self.tags):
            dates = self.dates(n)
            lines.append(f"  - {{id: load.{tag}, {loads}, pipeline: Load{tag}, dates: {dates}}}")
        for n, tag in enumerate(self.tags):
            # both sides date-expanded over the same dates: each day needs its own day's load
            lines.append(
                f"  - {{id: build.{tag}, {marts}, pipeline: {BUILD_PIPELINE}, "
                f"dates: {self.dates(n)}, needs: [load.{tag}]}}"
            )
        export = f"pipeline: {EXPORT_PIPELINE}"
        lines.append(f'  - {{id: export, {marts}, {export}, needs: ["build.*"]}}')
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path


def chain_load(*, quick: bool) -> ChainLoad:
    return ChainLoad(60) if quick else ChainLoad(300)


# --- the emulator's counts while the night runs --------------------------------------------


class StatsTrace:
    """A thread that samples the emulator's queryPipelineRuns count (and its 429s) with the
    moment it took each sample, so that the batch's polls can be told apart afterwards."""

    def __init__(self, emulator: EmulatorProcess) -> None:
        self._emulator = emulator
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stats-trace", daemon=True)
        self.samples: list[tuple[float, int, int]] = []

    def __enter__(self) -> StatsTrace:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            reads = query_counts(self._emulator.stats())
            self.samples.append((time.monotonic(), *reads))
            if stopping:
                return
            time.sleep(_TRACE_EVERY_S)


def query_counts(stats: Mapping[str, Any]) -> tuple[int, int]:
    """queryPipelineRuns requests the emulator answered (pages included), and its 429s."""
    answers: dict[str, int] = stats["requests"].get("queryPipelineRuns", {})
    return sum(answers.values()), answers.get("429", 0)


def polls_of(samples: Sequence[tuple[float, int, int]], *, gap_s: float = POLL_GAP_S) -> int:
    """How many polls made the queries counted in ``samples`` (moment, count, …): a poll is a
    burst of queries; a count that grows after ``gap_s`` without growth starts the next one."""
    polls = 0
    last_growth = -math.inf
    for (_, before, *_rest), (moment, after, *_more) in itertools.pairwise(samples):
        if after > before:
            if moment - last_growth > gap_s:
                polls += 1
            last_growth = moment
    return polls


# --- reading the night back from the emulator --------------------------------------------


def factory_runs(
    emulator: EmulatorProcess, *, subscription: str, factory: str
) -> list[dict[str, Any]]:
    """Every run of one factory, as ADF's PipelineRun objects, read with queryPipelineRuns."""
    context = ssl.create_default_context(cafile=emulator.cafile) if emulator.cafile else None
    url = (
        f"{emulator.url}/subscriptions/{quote(subscription, safe='')}"
        f"/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.DataFactory/factories/"
        f"{factory}/queryPipelineRuns?api-version=2018-06-01"
    )
    body: dict[str, Any] = {
        "lastUpdatedAfter": "2000-01-01T00:00:00Z",
        "lastUpdatedBefore": "2100-01-01T00:00:00Z",
    }
    runs: list[dict[str, Any]] = []
    while True:
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            headers={"Authorization": "Bearer bench", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            page = cast("dict[str, Any]", json.load(response))
        runs += page["value"]
        if not page.get("continuationToken"):
            return runs
        body["continuationToken"] = page["continuationToken"]


def _moment(value: Any) -> float:
    moment = parse_time(value, naive_is_utc=True)
    if moment is None:
        raise BenchError(f"the emulator gave no time: {value!r}")
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class Flow:
    """How the night flowed, on the emulator's clock."""

    # each build's creation minus its own day's load's end
    build_handoffs_s: list[float]
    # the export's creation minus the last build's end
    export_handoff_s: float
    # the first load's creation to the export's end
    wall_s: float


def flow(triggers: Mapping[str, str], runs: Mapping[str, Mapping[str, Any]]) -> Flow:
    """``triggers``: the report's run id → ADF runId; ``runs``: ADF's runs by runId."""

    def run(run_id: str) -> Mapping[str, Any]:
        found = runs.get(triggers[run_id])
        if found is None:
            raise BenchError(f"{run_id}: run {triggers[run_id]} is not in ADF")
        return found

    builds = sorted(run_id for run_id in triggers if run_id.startswith("build."))
    handoffs = [
        _moment(run(build)["runStart"]) - _moment(run("load" + build[5:])["runEnd"])
        for build in builds
    ]
    last_build = max(_moment(run(build)["runEnd"]) for build in builds)
    export = run("export")
    first = min(_moment(run(i)["runStart"]) for i in triggers if i.startswith("load."))
    return Flow(
        handoffs,
        _moment(export["runStart"]) - last_build,
        _moment(export["runEnd"]) - first,
    )


def trigger_lines(report: Path) -> dict[str, str]:
    """Each run id's ADF runId from its trigger line; an id triggered twice is an error."""
    triggers: dict[str, str] = {}
    with report.open(encoding="utf-8") as lines:
        for line in lines:
            entry = json.loads(line)
            if "outcome" in entry:
                continue
            if entry["status"] != "succeeded" or not entry.get("run_id"):
                raise BenchError(f"{entry['id']} was not triggered: {entry.get('reason', entry)}")
            if entry["id"] in triggers:
                raise BenchError(f"{entry['id']} has two trigger lines")
            triggers[entry["id"]] = entry["run_id"]
    return triggers


# --- one sample ----------------------------------------------------------------------------


@dataclass(slots=True)
class ChainSample:
    days: int
    process: Measured
    flow: Flow
    polls: int
    # the emulator's counts over the batch
    query_reads: int
    query_throttled: int
    create_runs: int
    runs_created: int
    duplicates: int
    emulator_cpu_s: float
    foreign_cpu_share: float

    @property
    def reads_per_poll(self) -> float:
        return self.query_reads / self.polls if self.polls else 0.0


def chain_sample(load: ChainLoad, *, tls: Tls, workdir: Path, tag: str) -> ChainSample:
    """``batchrun run MANIFEST --poll 5`` against a fresh emulator, then the night read back."""
    config = load.write_config(workdir / f"{tag}.emulator.json")
    manifest = workdir / f"chain-{load.days}.yaml"
    if not manifest.exists():
        load.write_manifest(manifest)
    report = workdir / f"{tag}.report.jsonl"
    log = workdir / f"{tag}.emulator.log"
    progress(f"{tag}: {load.days} days, {load.runs} runs, critical path {load.ideal_s:g} s")
    with serve_config(config, seed=_SEED, tls=tls, log_path=log) as emulator:
        command = [sys.executable, "-m", "batchrun", "run", str(manifest), "--report", str(report)]
        command += ["--poll", f"{load.poll_s:g}", "--log-format", "json"]
        out_path, err_path = workdir / f"{tag}.stdout", workdir / f"{tag}.stderr"
        with StatsTrace(emulator) as trace:
            observed = measure_to_files(
                emulator, command, env=batchrun_env(emulator.url, tls), timeout=load.timeout_s,
                out_path=out_path, err_path=err_path,
            )  # fmt: skip
        stats = emulator.stats()
        if observed.measured.code != 0:
            raise BenchError(f"batchrun run exited {observed.measured.code}:\n{tail(err_path)}")
        triggers = trigger_lines(report)
        if len(triggers) != load.runs:
            raise BenchError(f"{len(triggers)} of {load.runs} runs were triggered")
        runs = _await_export(emulator, triggers["export"], timeout_s=load.timeout_s)
    query_reads, query_throttled = query_counts(stats)
    create = stats["requests"].get("createRun", {})
    night = flow(triggers, runs)
    sample = ChainSample(
        load.days,
        observed.measured,
        night,
        polls_of(trace.samples),
        query_reads,
        query_throttled,
        sum(create.values()),
        int(stats["runs_created"]),
        int(stats["duplicates"]),
        observed.emulator_cpu_s,
        observed.foreign_cpu_share,
    )
    progress(
        f"{tag}: process {sample.process.wall_s:.1f}s, cpu {sample.process.cpu_s:.2f}s, "
        f"rss {sample.process.max_rss_mb:.0f} MB; night {night.wall_s:.1f}s; handoffs max "
        f"{max(night.build_handoffs_s):.2f}s, export {night.export_handoff_s:.2f}s; "
        f"{query_reads} queries in {sample.polls} polls, {query_throttled} 429s; "
        f"{sample.create_runs} createRun, {sample.duplicates} duplicates; "
        f"other processes {sample.foreign_cpu_share:.0%} of a core"
    )
    return sample


def _await_export(
    emulator: EmulatorProcess, export: str, *, timeout_s: float
) -> dict[str, dict[str, Any]]:
    """Every run of both factories, once the export (triggered last, not followed) has ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        marts = factory_runs(emulator, subscription=subscription_id(1), factory=MARTS_FACTORY)
        ended = [r for r in marts if r["runId"] == export and r["status"] in _TERMINAL]
        if ended:
            loads = factory_runs(emulator, subscription=subscription_id(0), factory=LOADS_FACTORY)
            return {run["runId"]: run for run in marts + loads}
        if time.monotonic() > deadline:
            raise BenchError(f"the export {export} did not end within {timeout_s:.0f}s")
        time.sleep(0.5)


# --- the figures ---------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with ``share`` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def chain_figures(load: ChainLoad, samples: Sequence[ChainSample]) -> list[Figure]:
    """Handoffs on every build of every sample, the rest on the worst sample."""
    bound = load.handoff_bound_s
    handoffs = [h for s in samples for h in s.flow.build_handoffs_s]
    p50, p95, worst = percentile(handoffs, 0.5), percentile(handoffs, 0.95), max(handoffs)
    export = max(s.flow.export_handoff_s for s in samples)
    wall = max(s.flow.wall_s for s in samples)
    per_poll = max(s.reads_per_poll for s in samples)
    polls = max(s.polls for s in samples)
    throttled = max(s.query_throttled for s in samples)
    reads = max(s.query_reads for s in samples)
    creates = max(s.create_runs for s in samples)
    duplicates = max(s.duplicates for s in samples)
    rss = max(s.process.max_rss_mb for s in samples)
    cpu = max(s.process.cpu_s for s in samples)
    process_wall = max(s.process.wall_s for s in samples)
    days = f"{load.days} days"
    return [
        Figure(
            "chain",
            f"build created after its load's end ({days}): p50 | p95 | max",
            f"{p50:.2f} | {p95:.2f} | {worst:.2f} s",
            f"{worst / bound:.3f}",
            f"≤ {bound:g} s",
            worst <= bound,
            {"p50_s": p50, "p95_s": p95, "max_s": worst, "bound_s": bound, "n": len(handoffs)},
        ),
        Figure(
            "chain",
            "export created after the last build's end",
            f"{export:.2f} s",
            f"{export / bound:.3f}",
            f"≤ {bound:g} s",
            export <= bound,
            {"max_s": export, "bound_s": bound},
        ),
        Figure(
            "chain",
            f"night (first load created to export's end) vs critical path {load.ideal_s:g} s",
            f"{wall:.2f} s",
            f"{wall / load.ideal_s:.3f}x",
            f"≤ {load.wall_bound_s / load.ideal_s:.3f}x",
            wall <= load.wall_bound_s,
            {"wall_s": wall, "ideal_s": load.ideal_s, "bound_s": load.wall_bound_s},
        ),
        Figure(
            "chain",
            f"queryPipelineRuns / poll ({load.runs} runs, 2 factories)",
            f"{per_poll:.1f} ({polls} polls)",
            f"{per_poll / load.reads_bound:.3f}",
            f"≤ {load.reads_bound}",
            per_poll <= load.reads_bound,
            {"per_poll": per_poll, "bound": load.reads_bound, "polls": polls},
        ),
        Figure(
            "chain",
            "429s on reads / queryPipelineRuns",
            f"{throttled} / {reads}",
            f"{throttled / reads:.2%}" if reads else "",
            "= 0",
            throttled == 0,
            {"throttled": throttled, "reads": reads},
        ),
        Figure(
            "chain",
            "createRun requests / runs (duplicates)",
            f"{creates} / {load.runs} ({duplicates})",
            f"{creates / load.runs:.3f}",
            f"= {load.runs} (0)",
            creates == load.runs and duplicates == 0,
            {"create_runs": creates, "runs": load.runs, "duplicates": duplicates},
        ),
        Figure(
            "chain",
            "batchrun run: process wall | CPU | peak RSS",
            f"{process_wall:.1f} s | {cpu:.2f} s | {rss:.0f} MB",
            "",
            "",
            None,
            {"wall_s": process_wall, "cpu_s": cpu, "max_rss_mb": rss},
        ),
    ]
