"""The ``follow`` row: trigger N runs over F factories, then ``batchrun watch`` them to their end.

One emulator per sample, with a topology of F factories whose pipelines run for different
lengths (``queued_ms``/``duration_ms``/``failure_rate`` per pipeline) and ARM's default read
budget; the write budget is raised so the runs exist within seconds. ``batchrun run`` triggers
them, then ``batchrun watch REPORT`` follows them as its own process (peak RSS, CPU) while a
thread tails the report and stamps every outcome line with the moment it appeared: against the
run's ``run_end`` (the emulator's clock is this machine's) that is how late the report learned
of the end. The emulator's counts before and after the watch give its reads and their 429s.

The contrast is the SDK way (Airflow's and Kestra's): one ``pipeline_runs.get`` per run per
poll. Its cost per poll follows from the read budget alone; ``benchmarks.peer_sdk_poll`` also
measures one such poll over a sample of the runs, against the same emulator once its read bucket
has refilled.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from benchmarks.harness import (
    BenchError,
    Measured,
    batchrun_env,
    client_env,
    measure,
    measure_to_files,
    serve_config,
    tail,
    write_reads_config,
)
from benchmarks.workloads import RESOURCE_GROUP, subscription_id

if TYPE_CHECKING:
    from pathlib import Path

    from benchmarks.harness import Tls

# queryPipelineRuns answers at most this many runs a page (ADF's and the emulator's page)
PAGE_SIZE = 100
# what `batchrun watch` prints last: "followed N runs: ... (P polls, R reads)"
_FOLLOWED = re.compile(r"followed (\d+) runs: .*\((\d+) polls, (\d+) reads\)")
_TAIL_EVERY_S = 0.02
_SEED = "13"


@dataclass(frozen=True, slots=True)
class FollowLoad:
    """``runs`` runs spread evenly over ``factories`` factories of one subscription."""

    runs: int
    factories: int
    # one pipeline per length, each run's pipeline taken in turn
    durations_ms: tuple[int, ...]
    queued_ms: int = 1000
    failure_rate: float = 0.05
    # `watch --poll`: the longest wait between polls, and so the bound on how late an end is
    poll_s: float = 5.0
    # ARM's default per-subscription read bucket (the emulator's defaults)
    read_burst: int = 250
    read_refill: float = 25.0
    # runs the SDK-style poll GETs one by one
    sdk_sample: int = 500
    concurrency: int = 64

    @property
    def pipelines(self) -> tuple[str, ...]:
        return tuple(f"Follow{ms // 1000:03d}s" for ms in self.durations_ms)

    @property
    def pages_per_factory(self) -> int:
        """Pages of one full listing of a factory's runs: the most one poll of it may need."""
        return math.ceil(self.runs / self.factories / PAGE_SIZE)

    @property
    def reads_bound(self) -> int:
        """Reads per poll allowed: every factory, every page of it."""
        return self.factories * self.pages_per_factory

    def sdk_poll_s(self, gets: int) -> float:
        """Seconds one SDK-style poll of ``gets`` GETs takes at the read budget (burst free)."""
        return max(0, gets - self.read_burst) / self.read_refill

    @property
    def timeout_s(self) -> float:
        return 120.0 + self.runs / 50 + (self.queued_ms + max(self.durations_ms)) / 1000

    def factory(self, n: int) -> str:
        return f"follow-{n % self.factories:02d}"

    def write_config(self, path: Path) -> Path:
        """The emulator's topology: F factories, each with every pipeline; budgets in settings."""
        pipelines = {
            name: {
                "queued_ms": self.queued_ms,
                "duration_ms": ms,
                "failure_rate": self.failure_rate,
            }
            for name, ms in zip(self.pipelines, self.durations_ms, strict=True)
        }
        factories = {self.factory(n): pipelines for n in range(self.factories)}
        return write_reads_config(
            path,
            {subscription_id(0): factories},
            read_burst=self.read_burst,
            read_refill=self.read_refill,
        )

    def write_manifest(self, path: Path) -> Path:
        subscription = subscription_id(0)
        with path.open("w", encoding="utf-8") as out:
            out.write(f"version: 1\ndefaults: {{resource_group: {RESOURCE_GROUP}}}\nruns:\n")
            for n in range(self.runs):
                pipeline = self.pipelines[(n // self.factories) % len(self.pipelines)]
                out.write(
                    f"  - {{id: run-{n:06d}, subscription: {subscription}, "
                    f"factory: {self.factory(n)}, pipeline: {pipeline}, "
                    f"parameters: {{partition: {n}}}}}\n"
                )
        return path


def follow_load(*, quick: bool) -> FollowLoad:
    if quick:
        return FollowLoad(1000, 5, durations_ms=(6000, 9000, 12000), sdk_sample=350)
    return FollowLoad(10_000, 20, durations_ms=(30000, 45000, 60000), sdk_sample=1000)


@dataclass(frozen=True, slots=True)
class Seen:
    """An outcome line, and when it appeared in the report."""

    id: str
    outcome: str
    run_end: str | None
    seen_at: float


class ReportTail:
    """A thread that reads the lines appended to a report and stamps each with time.time()."""

    def __init__(self, report: Path) -> None:
        self._report = report
        self._offset = report.stat().st_size
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="report-tail", daemon=True)
        self.seen: list[Seen] = []

    def __enter__(self) -> ReportTail:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        pending = b""
        with self._report.open("rb") as report:
            report.seek(self._offset)
            while True:
                stopping = self._stop.is_set()
                chunk = report.read()
                if chunk:
                    stamp = time.time()
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    self.seen.extend(parse_seen(lines, stamp))
                if stopping:
                    return
                time.sleep(_TAIL_EVERY_S)


def parse_seen(lines: list[bytes], stamp: float) -> list[Seen]:
    """The outcome lines among ``lines`` (complete report lines), stamped ``stamp``."""
    seen = []
    for line in lines:
        if not line.strip():
            continue
        entry = json.loads(line)
        if "outcome" in entry:
            seen.append(Seen(entry["id"], entry["outcome"], entry.get("run_end"), stamp))
    return seen


def lags_s(seen: list[Seen], *, since: float) -> tuple[list[float], int]:
    """Seconds from each run's end to its line in the report, for runs that ended after
    ``since`` (the watch's start; an earlier end waited for the watch, not for a poll); and how
    many ended before it."""
    lags = []
    before = 0
    for line in seen:
        if line.run_end is None:
            continue
        ended = datetime.fromisoformat(line.run_end.replace("Z", "+00:00")).timestamp()
        if ended < since:
            before += 1
        else:
            lags.append(line.seen_at - ended)
    return lags, before


@dataclass(slots=True)
class FollowSample:
    runs: int
    factories: int
    trigger: Measured
    watch: Measured
    outcomes: dict[str, int]
    polls: int
    # the emulator's counts during the watch: requests (pages included) and their 429s
    query_reads: int
    query_throttled: int
    activity_reads: int
    activity_throttled: int
    lags_s: list[float] = field(repr=False)
    ended_before_watch: int
    # the lags of runs that ended Failed: their line waits for a paced queryActivityruns
    failed_lags_s: list[float] = field(repr=False)
    emulator_cpu_s: float
    foreign_cpu_share: float
    sdk: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "factories": self.factories,
            "trigger": asdict(self.trigger),
            "watch": asdict(self.watch),
            "outcomes": self.outcomes,
            "polls": self.polls,
            "query_reads": self.query_reads,
            "query_throttled": self.query_throttled,
            "activity_reads": self.activity_reads,
            "activity_throttled": self.activity_throttled,
            "lag_s": _spread(self.lags_s),
            "failed_lag_s": _spread(self.failed_lags_s),
            "ended_before_watch": self.ended_before_watch,
            "emulator_cpu_s": self.emulator_cpu_s,
            "foreign_cpu_share": self.foreign_cpu_share,
            "sdk": self.sdk,
        }


def _spread(values: list[float]) -> dict[str, float | None]:
    return {
        "n": len(values),
        "p50": statistics.median(values) if values else None,
        "max": max(values, default=None),
    }


def _answers(stats: dict[str, Any], name: str) -> dict[str, int]:
    return dict(stats["requests"].get(name, {}))


def _delta(before: dict[str, Any], after: dict[str, Any], name: str) -> tuple[int, int]:
    """Requests named ``name`` between two stats, and the 429s among them."""
    old, new = _answers(before, name), _answers(after, name)
    total = sum(new.values()) - sum(old.values())
    return total, new.get("429", 0) - old.get("429", 0)


def follow_sample(load: FollowLoad, *, tls: Tls, workdir: Path, tag: str) -> FollowSample:
    """Trigger, watch (measured), then one SDK-style poll over a sample of the runs."""
    config = load.write_config(workdir / f"{tag}.emulator.json")
    manifest = workdir / f"follow-{load.runs}.yaml"
    if not manifest.exists():
        load.write_manifest(manifest)
    report = workdir / f"{tag}.report.jsonl"
    log = workdir / f"{tag}.emulator.log"
    with serve_config(config, seed=_SEED, tls=tls, log_path=log) as emulator:
        url = emulator.url
        env = batchrun_env(url, tls)
        batchrun = [sys.executable, "-m", "batchrun"]
        err_path = workdir / f"{tag}.trigger.stderr"
        trigger_cmd = [*batchrun, "run", str(manifest), "--report", str(report)]
        trigger_cmd += ["--log-format", "json", "--concurrency", str(load.concurrency)]
        trigger = measure_to_files(
            emulator, trigger_cmd, env=env, timeout=load.timeout_s,
            out_path=err_path, err_path=err_path,
        ).measured  # fmt: skip
        if trigger.code != 0:
            raise BenchError(f"batchrun run exited {trigger.code}:\n{tail(err_path)}")
        before = emulator.stats()
        out_path = workdir / f"{tag}.watch.stdout"
        err_path = workdir / f"{tag}.watch.stderr"
        watch_cmd = [*batchrun, "watch", str(report), "--poll", f"{load.poll_s:g}"]
        watch_cmd += ["--log-format", "json"]
        with ReportTail(report) as report_tail:
            started = time.time()
            observed = measure_to_files(
                emulator, watch_cmd, env=env, timeout=load.timeout_s,
                out_path=out_path, err_path=err_path,
            )  # fmt: skip
        after = emulator.stats()
        if observed.measured.code not in (0, 1):
            raise BenchError(f"batchrun watch exited {observed.measured.code}:\n{tail(err_path)}")
        followed = _FOLLOWED.search(out_path.read_text(encoding="utf-8"))
        if followed is None or int(followed.group(1)) != load.runs:
            raise BenchError(f"batchrun watch did not follow {load.runs} runs:\n{tail(out_path)}")
        outcomes: dict[str, int] = {}
        for line in report_tail.seen:
            outcomes[line.outcome] = outcomes.get(line.outcome, 0) + 1
        if sum(outcomes.values()) != load.runs:
            raise BenchError(f"{sum(outcomes.values())} of {load.runs} outcome lines appeared")
        query_reads, query_throttled = _delta(before, after, "queryPipelineRuns")
        activity_reads, activity_throttled = _delta(before, after, "queryActivityruns")
        lags, before_watch = lags_s(report_tail.seen, since=started)
        failed = [line for line in report_tail.seen if line.outcome == "Failed"]
        failed_lags, _ = lags_s(failed, since=started)
        # the SDK's poll starts with the bucket as full as the watch's was
        time.sleep(load.read_burst / load.read_refill)
        sdk = sdk_poll(load, report, url=url, tls=tls, workdir=workdir, tag=tag)
        sdk_stats = emulator.stats()
        sdk["gets"], sdk["throttled"] = _delta(after, sdk_stats, "getPipelineRun")
    return FollowSample(
        load.runs,
        load.factories,
        trigger,
        observed.measured,
        outcomes,
        int(followed.group(2)),
        query_reads,
        query_throttled,
        activity_reads,
        activity_throttled,
        lags,
        before_watch,
        failed_lags,
        observed.emulator_cpu_s,
        observed.foreign_cpu_share,
        sdk,
    )


def sdk_poll(
    load: FollowLoad, report: Path, *, url: str, tls: Tls, workdir: Path, tag: str
) -> dict[str, Any]:
    """``benchmarks.peer_sdk_poll`` over the first ``sdk_sample`` runs of ``report``."""
    runs = []
    with report.open(encoding="utf-8") as lines:
        for line in lines:
            entry = json.loads(line)
            if "outcome" not in entry and entry.get("run_id"):
                runs.append(
                    {
                        "subscription": entry["subscription"],
                        "resource_group": entry["resource_group"],
                        "factory": entry["factory"],
                        "run_id": entry["run_id"],
                    }
                )
                if len(runs) == load.sdk_sample:
                    break
    runs_path = workdir / f"{tag}.sdk-runs.json"
    runs_path.write_text(json.dumps(runs), encoding="utf-8")
    out_path = workdir / f"{tag}.sdk.stdout"
    err_path = workdir / f"{tag}.sdk.stderr"
    command = [sys.executable, "-m", "benchmarks.peer_sdk_poll", str(runs_path)]
    command += ["--endpoint", url, "--concurrency", "16"]
    with out_path.open("w", encoding="utf-8") as out, err_path.open("w") as err:
        measured = measure(
            command,
            env=client_env(SSL_CERT_FILE=str(tls.ca)),
            timeout=60 + 4 * load.sdk_poll_s(load.sdk_sample),
            stdout=out,
            stderr=err,
        )
    try:
        result: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
    except ValueError:
        raise BenchError(
            f"benchmarks.peer_sdk_poll exited {measured.code}:\n{tail(err_path)}"
        ) from None
    return result | {"process": asdict(measured)}
