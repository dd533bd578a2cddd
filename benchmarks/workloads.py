"""The workloads: emulator settings, the runs to trigger, and the ideal time each is judged by."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# "no throttling": a bucket that no benchmark can empty
UNLIMITED_BURST = 10_000_000
UNLIMITED_REFILL = 10_000_000.0
RESOURCE_GROUP = "rg-bench"
PIPELINE = "LoadOrders"
# the fault mix of tests/test_exactly_once.py::test_lost_responses_make_no_duplicates: answers
# lost after the run was created (dropped connection, 500, a stall past the read timeout) and
# 503s before it was
FAULT_MIX = (
    "--seed",
    "11",
    "--drop-after-create",
    "0.03",
    "--fail-500-after-create",
    "0.05",
    "--fail-503",
    "0.05",
    "--stall-after-create",
    "0.01",
    "--stall-ms",
    "2500",
)


# issue 14's "lossy" night: a few percent of answers lost (a 500 and a dropped connection after
# the run was created, a 503 before), and runs listed by queries only 2 s after they are created
LOSSY_MIX = (
    "--seed",
    "14",
    "--fail-500-after-create",
    "0.03",
    "--fail-503",
    "0.03",
    "--drop-after-create",
    "0.03",
    "--visibility-delay-ms",
    "2000",
)


def subscription_id(index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://batchrun.invalid/bench/{index}"))


@dataclass(frozen=True, slots=True)
class Workload:
    """``runs`` runs over ``subscriptions`` subscriptions, listed subscription by subscription."""

    name: str
    runs: int
    subscriptions: int = 1
    burst: int = UNLIMITED_BURST
    refill: float = UNLIMITED_REFILL
    latency_ms: float = 0.0
    concurrency: int = 16
    # more emulator flags (the fault mix), and the clients' settings for lost answers: the read
    # timeout (batchrun and the SDK peer) and batchrun's reconcile window; None: their defaults
    faults: tuple[str, ...] = ()
    read_timeout_s: float | None = None
    reconcile_window_s: float | None = None

    @property
    def throttled(self) -> bool:
        return self.burst < UNLIMITED_BURST

    @property
    def ideal_s(self) -> float | None:
        """The fastest possible batch: the budget's refill time, or the latency's pipelining."""
        if self.throttled:
            budget = self.subscriptions * self.burst
            return max(0, self.runs - budget) / (self.subscriptions * self.refill)
        if self.latency_ms:
            return self.runs * self.latency_ms / 1000 / self.concurrency
        return None

    @property
    def timeout_s(self) -> float:
        """Generous: a client this slow has a bug, not a performance problem."""
        return max(120.0, 6 * (self.ideal_s or 0.0), self.runs / 100)

    def emulator_args(self) -> list[str]:
        return [
            "--write-burst",
            str(self.burst),
            "--write-refill",
            f"{self.refill:g}",
            "--latency-ms",
            f"{self.latency_ms:g}",
            *self.faults,
        ]

    def runs_by_subscription(self) -> Iterator[dict[str, Any]]:
        per = -(-self.runs // self.subscriptions)
        for n in range(self.runs):
            yield {
                "id": f"run-{n:06d}",
                "subscription": subscription_id(n // per),
                "resource_group": RESOURCE_GROUP,
                "factory": f"factory-{n % 3}",
                "pipeline": PIPELINE,
                "parameters": {"partition": n},
            }

    def write_manifest(self, path: Path) -> Path:
        """A manifest v1 that batchrun reads; one flow-style line a run."""
        with path.open("w", encoding="utf-8") as out:
            out.write(
                "version: 1\n"
                f"defaults: {{resource_group: {RESOURCE_GROUP}, pipeline: {PIPELINE}}}\n"
                "runs:\n"
            )
            for run in self.runs_by_subscription():
                out.write(
                    f"  - {{id: {run['id']}, subscription: {run['subscription']}, "
                    f"factory: {run['factory']}, parameters: {{partition: "
                    f"{run['parameters']['partition']}}}}}\n"
                )
        return path

    def write_runs_json(self, path: Path) -> Path:
        """The same runs for the SDK peer, as plain JSON (cheaper to read than YAML)."""
        path.write_text(json.dumps(list(self.runs_by_subscription())), encoding="utf-8")
        return path


def workloads(*, quick: bool) -> dict[str, Workload]:
    """The benchmark's workloads by name; ``quick`` shrinks them for a smoke run."""

    def scaled(full: int, small: int) -> int:
        return small if quick else full

    return {
        "throttled": Workload(
            "throttled", scaled(1500, 400), burst=100, refill=50, latency_ms=20, concurrency=16
        ),
        "latency": Workload("latency", scaled(2000, 640), latency_ms=50, concurrency=64),
        "multi": Workload(
            "multi", scaled(3000, 1000), subscriptions=10, burst=50, refill=20, latency_ms=20
        ),
        "cpu": Workload("cpu", scaled(3000, 1000), concurrency=64),
        "cpu-startup": Workload("cpu-startup", 30, concurrency=64),
        "memory": Workload("memory", scaled(100_000, 10_000), concurrency=64),
        "faults": Workload(
            "faults",
            scaled(1000, 200),
            burst=100_000,
            concurrency=32,
            faults=FAULT_MIX,
            read_timeout_s=1.0,
            reconcile_window_s=2.0,
        ),
        # batchrun with its defaults: the 30 s --reconcile-window is only the ceiling
        "lossy": Workload(
            "lossy", scaled(1000, 1000), burst=100_000, concurrency=32, faults=LOSSY_MIX
        ),
    }
