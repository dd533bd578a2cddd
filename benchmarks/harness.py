"""Running one sample: a fresh emulator, a client as a child process, and what both measured.

Every client runs as its own process, reaped with ``os.wait4`` so its CPU time and peak RSS are
its own; the emulator is another process, started fresh for each sample (a full bucket, an
empty store) and always stopped. Everything talks to 127.0.0.1 only: proxy variables are dropped
from the clients' environment.
"""

from __future__ import annotations

import compileall
import concurrent.futures
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import trustme

from batchrun.emulator import process
from benchmarks.workloads import RESOURCE_GROUP

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from batchrun.emulator.process import EmulatorProcess
    from benchmarks.workloads import Workload

ROOT = Path(__file__).resolve().parent.parent
IDENTITY_SECRET = "bench-identity-secret"
_DROPPED_ENV = ("AZURE_", "MSI_", "IDENTITY_", "BATCHRUN_")
# the end-of-run summary's account of the learned visibility window
_WINDOW = re.compile(r"visibility window [\d.]+ s[^;)]*(?:\([^)]*\))?")
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


@dataclass(frozen=True, slots=True)
class Figure:
    row: str
    measure: str
    value: str
    ratio: str
    target: str
    # None: for information, no target
    ok: bool | None
    median: dict[str, float] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return {None: "info", True: "pass", False: "MISS"}[self.ok]


class BenchError(Exception):
    """A sample could not be taken: a client failed or timed out."""


@dataclass(frozen=True, slots=True)
class Tls:
    ca: Path
    cert: Path
    key: Path

    @classmethod
    def create(cls, directory: Path) -> Tls:
        """A throwaway CA and a certificate for 127.0.0.1 signed by it."""
        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1", "localhost")
        tls = cls(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
        ca.cert_pem.write_to_path(str(tls.ca))
        tls.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        issued.private_key_pem.write_to_path(str(tls.key))
        return tls


@dataclass(frozen=True, slots=True)
class Measured:
    """What ``wait4`` said about one child process."""

    code: int
    wall_s: float
    cpu_s: float
    max_rss_mb: float


@dataclass(slots=True)
class Sample:
    """One client run against one fresh emulator."""

    client: str
    workload: str
    runs: int
    batch_wall_s: float
    process: Measured
    succeeded: int
    failed: int
    requests: int = 0
    throttled: int = 0
    emulator_cpu_s: float = 0.0
    peak_in_flight: int = 0
    # CPU seconds that neither the client, the emulator nor the harness used, per wall second
    foreign_cpu_share: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    # the emulator's count of runs created, and of runs created again with the same parameters
    runs_created: int = 0
    duplicates: int = 0
    # queryPipelineRuns requests the emulator answered (each page counts)
    reads: int = 0

    @property
    def wrongly_failed(self) -> int:
        """Runs reported failed that the emulator created anyway.

        Every run in a workload has its own parameters, so the emulator created
        ``runs_created - duplicates`` distinct runs; each run reported succeeded is one of them
        (ADF answered that it created it), and the others belong to runs reported failed.
        """
        return self.runs_created - self.duplicates - self.succeeded

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"wrongly_failed": self.wrongly_failed}


def measure(
    command: Sequence[str],
    *,
    env: dict[str, str],
    timeout: float,
    stdout: IO[str] | int,
    stderr: IO[str] | int,
) -> Measured:
    """Run ``command`` to its end (killed after ``timeout``) and read its own rusage."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr, cwd=ROOT)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        waited = pool.submit(os.wait4, child.pid, 0)
        try:
            _, status, usage = waited.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            child.send_signal(signal.SIGKILL)
            waited.result()
            child.returncode = -signal.SIGKILL
            raise BenchError(f"timed out after {timeout:.0f}s: {' '.join(command)}") from None
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    child.returncode = code  # reaped by wait4: Popen must not wait again
    # ru_maxrss is in KiB on Linux
    return Measured(code, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def compile_project() -> None:
    """Write batchrun's bytecode caches before anything is measured.

    An installed batchrun has them (pip compiles a package as it installs it), and a checkout
    writes them on its first run, unless ``PYTHONDONTWRITEBYTECODE`` is set, as on the reference
    machine: then every client process compiled batchrun's ~60 modules from source, ~0.15 s of
    CPU that a user never pays, counted in the start-up of the ``cpu`` and ``multi`` rows.
    """
    compileall.compile_dir(ROOT / "batchrun", quiet=1)


def client_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_DROPPED_ENV) and key.lower() not in _PROXY_VARS
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env | extra


_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process, from /proc (0 where there is none)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@contextmanager
def serve(workload: Workload, *, tls: Tls | None, log_path: Path) -> Iterator[EmulatorProcess]:
    """A fresh emulator for ``workload`` (full buckets, no runs), always stopped on exit."""
    args = ["--accept-any", "--quiet", "--identity-header", IDENTITY_SECRET]
    args += workload.emulator_args()
    if tls is not None:
        args += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    with process.start(
        args, log_path=log_path, cwd=ROOT, cafile=tls.ca if tls else None
    ) as emulator:
        yield emulator


def write_reads_config(
    path: Path,
    factories: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    read_burst: int,
    read_refill: float,
) -> Path:
    """The emulator config of a row that measures reads: ``factories`` (subscription -> factory
    -> pipelines, all in RESOURCE_GROUP), ARM's read budget as given, writes without a limit."""
    config = {
        "settings": {
            # the runs exist within seconds: writes are not what these rows measure
            "write_burst": 10_000_000,
            "write_refill": 10_000_000,
            "read_burst": read_burst,
            "read_refill": read_refill,
        },
        "subscriptions": {
            subscription: {
                "resource_groups": {
                    RESOURCE_GROUP: {
                        "factories": {
                            name: {"pipelines": pipelines} for name, pipelines in named.items()
                        }
                    }
                }
            }
            for subscription, named in factories.items()
        },
    }
    # JSON is YAML: the emulator's loader reads it
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    return path


@contextmanager
def serve_config(config: Path, *, seed: str, tls: Tls, log_path: Path) -> Iterator[EmulatorProcess]:
    """A fresh emulator over https from a config file (its topology, run lengths and budgets),
    seeded, always stopped on exit."""
    args = ["--config", str(config), "--quiet", "--identity-header", IDENTITY_SECRET]
    args += ["--seed", seed, "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    with process.start(args, log_path=log_path, cwd=ROOT, cafile=tls.ca) as emulator:
        yield emulator


def batchrun_env(url: str, tls: Tls | None) -> dict[str, str]:
    """The environment of ``batchrun`` against the emulator at ``url``: managed identity from
    the emulator, as the e2e tests run it, and trust in the emulator's CA where it has TLS."""
    env = client_env(
        IDENTITY_ENDPOINT=f"{url}/msi/token",
        IDENTITY_HEADER=IDENTITY_SECRET,
        BATCHRUN_ENDPOINT=url,
    )
    if tls is not None:
        env["SSL_CERT_FILE"] = str(tls.ca)
    return env


def measure_to_files(
    emulator: EmulatorProcess,
    command: Sequence[str],
    *,
    env: dict[str, str],
    timeout: float,
    out_path: Path,
    err_path: Path,
) -> Observed:
    """:func:`measure_against`, the client's stdout and stderr written to these files (both to
    one file where the paths are the same)."""
    with out_path.open("w", encoding="utf-8") as out:
        if err_path == out_path:
            return measure_against(
                emulator, command, env=env, timeout=timeout, stdout=out, stderr=out
            )
        with err_path.open("w", encoding="utf-8") as err:
            return measure_against(
                emulator, command, env=env, timeout=timeout, stdout=out, stderr=err
            )


def machine_busy_s() -> float:
    """CPU seconds all processes have used since boot, from /proc/stat (0 where there is none)."""
    try:
        first = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0]
    except OSError:
        return 0.0
    # user nice system idle iowait irq softirq steal ...
    ticks = [int(value) for value in first.split()[1:]]
    return (sum(ticks[:3]) + sum(ticks[5:8])) / _TICKS


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_until_quiet(*, limit_s: float, threshold: float = 0.2) -> float:
    """Wait (at most ``limit_s``) for a second in which other processes use under ``threshold``
    of a core; returns the share seen last. The machine is shared: a test suite running beside
    the bench would otherwise land in its figures."""
    deadline = time.monotonic() + limit_s
    while True:
        busy, own = machine_busy_s(), _own_cpu_s()
        time.sleep(1.0)
        share = max(0.0, (machine_busy_s() - busy) - (_own_cpu_s() - own))
        if share < threshold or time.monotonic() >= deadline:
            return share


@dataclass(frozen=True, slots=True)
class Observed:
    measured: Measured
    emulator_cpu_s: float
    foreign_cpu_share: float


def measure_against(
    emulator: EmulatorProcess,
    command: Sequence[str],
    *,
    env: dict[str, str],
    timeout: float,
    stdout: IO[str] | int,
    stderr: IO[str] | int,
) -> Observed:
    """:func:`measure`, the emulator's CPU while the client ran, and everyone else's."""
    pid = emulator.process.pid
    emulator_before, busy_before, own_before = process_cpu_s(pid), machine_busy_s(), _own_cpu_s()
    measured = measure(command, env=env, timeout=timeout, stdout=stdout, stderr=stderr)
    emulator_cpu = process_cpu_s(pid) - emulator_before
    busy = machine_busy_s() - busy_before
    own = _own_cpu_s() - own_before
    foreign = max(0.0, busy - measured.cpu_s - emulator_cpu - own)
    return Observed(measured, emulator_cpu, foreign / measured.wall_s if measured.wall_s else 0.0)


@dataclass(frozen=True, slots=True)
class Counted:
    """What the emulator counted once the client was done."""

    requests: int
    throttled: int
    peak_in_flight: int
    runs_created: int
    duplicates: int
    # createRun answers by status ("200", "429", "500", "dropped", ...)
    answers: dict[str, int]
    reads: int


def _emulator_counts(emulator: EmulatorProcess) -> Counted:
    stats = emulator.stats()
    answers: dict[str, int] = stats["requests"].get("createRun", {})
    return Counted(
        sum(answers.values()),
        answers.get("429", 0),
        int(stats["peak_in_flight"]),
        int(stats["runs_created"]),
        int(stats["duplicates"]),
        dict(answers),
        sum(stats["requests"].get("queryPipelineRuns", {}).values()),
    )


def tail(path: Path, limit: int = 1500) -> str:
    """The end of a client's output file, for the error that says why a sample failed."""
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return text[-limit:]


def progress(message: str) -> None:
    print(f"  · {message}", file=sys.stderr, flush=True)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def report_span(report: Path) -> tuple[float, int, int]:
    """First run started to last run finished, from a batchrun report; succeeded, failed."""
    first: datetime | None = None
    last: datetime | None = None
    succeeded = failed = 0
    with report.open(encoding="utf-8") as lines:
        for line in lines:
            entry = json.loads(line)
            started, finished = _parse_time(entry["started_at"]), _parse_time(entry["finished_at"])
            first = started if first is None or started < first else first
            last = finished if last is None or finished > last else last
            if entry["status"] == "succeeded":
                succeeded += 1
            else:
                failed += 1
    if first is None or last is None:
        return 0.0, 0, 0
    return (last - first).total_seconds(), succeeded, failed


def batchrun_sample(
    workload: Workload, manifest: Path, *, tls: Tls | None, workdir: Path, tag: str
) -> Sample:
    """``batchrun run`` with managed identity from the emulator, as the e2e tests run it."""
    report = workdir / f"{tag}.report.jsonl"
    err_path = workdir / f"{tag}.stderr"
    with serve(workload, tls=tls, log_path=workdir / f"{tag}.emulator.log") as emulator:
        env = batchrun_env(emulator.url, tls)
        command = [sys.executable, "-m", "batchrun", "run", str(manifest), "--report", str(report)]
        command += ["--log-format", "json", "--concurrency", str(workload.concurrency)]
        if workload.read_timeout_s is not None:
            command += ["--read-timeout", f"{workload.read_timeout_s:g}"]
        if workload.reconcile_window_s is not None:
            command += ["--reconcile-window", f"{workload.reconcile_window_s:g}"]
        observed = measure_to_files(
            emulator, command, env=env, timeout=workload.timeout_s,
            out_path=err_path, err_path=err_path,
        )  # fmt: skip
        measured = observed.measured
        counted = _emulator_counts(emulator)
    if measured.code not in (0, 1) or not report.exists():
        raise BenchError(f"batchrun run exited {measured.code}:\n{tail(err_path)}")
    span, succeeded, failed = report_span(report)
    extra: dict[str, Any] = {"create_run_answers": counted.answers} if workload.faults else {}
    window = _WINDOW.search(tail(err_path, 4000))
    if window is not None:
        extra["window"] = window.group(0)
    for written in workdir.glob(f"{report.name}*"):  # the report and its intent journal
        written.unlink()
    return Sample(
        "batchrun",
        workload.name,
        workload.runs,
        span,
        measured,
        succeeded,
        failed,
        counted.requests,
        counted.throttled,
        observed.emulator_cpu_s,
        counted.peak_in_flight,
        observed.foreign_cpu_share,
        extra=extra,
        runs_created=counted.runs_created,
        duplicates=counted.duplicates,
        reads=counted.reads,
    )


# the peers: client name -> module (each prints {wall_s, succeeded, failed, errors}); a
# workload's read_timeout_s is passed as --read-timeout, which only the SDK peer takes
PEERS = {"sdk": "benchmarks.peer_sdk", "floor": "benchmarks.peer_floor"}


def peer_sample(
    client: str, workload: Workload, runs_json: Path, *, tls: Tls, workdir: Path, tag: str
) -> Sample:
    """A peer process (the azure-mgmt-datafactory SDK, or the bare-aiohttp floor) over https."""
    out_path = workdir / f"{tag}.stdout"
    err_path = workdir / f"{tag}.stderr"
    with serve(workload, tls=tls, log_path=workdir / f"{tag}.emulator.log") as emulator:
        command = [sys.executable, "-m", PEERS[client], str(runs_json)]
        command += ["--endpoint", emulator.url, "--concurrency", str(workload.concurrency)]
        if workload.read_timeout_s is not None:
            command += ["--read-timeout", f"{workload.read_timeout_s:g}"]
        observed = measure_to_files(
            emulator,
            command,
            env=client_env(SSL_CERT_FILE=str(tls.ca)),
            timeout=workload.timeout_s,
            out_path=out_path,
            err_path=err_path,
        )
        measured = observed.measured
        counted = _emulator_counts(emulator)
    try:
        result = json.loads(out_path.read_text(encoding="utf-8"))
    except ValueError:
        raise BenchError(f"{PEERS[client]} exited {measured.code}:\n{tail(err_path)}") from None
    return Sample(
        client,
        workload.name,
        workload.runs,
        result["wall_s"],
        measured,
        result["succeeded"],
        result["failed"],
        counted.requests,
        counted.throttled,
        observed.emulator_cpu_s,
        counted.peak_in_flight,
        observed.foreign_cpu_share,
        extra=({"errors": result["errors"]} if result["errors"] else {})
        | ({"create_run_answers": counted.answers} if workload.faults else {}),
        runs_created=counted.runs_created,
        duplicates=counted.duplicates,
        reads=counted.reads,
    )


def offline_sample(command: Sequence[str], *, name: str, timeout: float, workdir: Path) -> Measured:
    """A batchrun command that sends nothing (validate, --dry-run); stdout is discarded."""
    err_path = workdir / f"{name}.stderr"
    with err_path.open("w", encoding="utf-8") as err:
        measured = measure(
            [sys.executable, "-m", "batchrun", *command],
            env=client_env(),
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    if measured.code != 0:
        raise BenchError(f"batchrun {command[0]} exited {measured.code}:\n{tail(err_path)}")
    return measured
