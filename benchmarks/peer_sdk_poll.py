"""The SDK way of following runs, one poll of it: one ``pipeline_runs.get`` per run.

``python -m benchmarks.peer_sdk_poll RUNS.json --endpoint URL --concurrency N`` reads a list of
``{subscription, resource_group, factory, run_id}`` and GETs each run once with
azure-mgmt-datafactory's aio client (the SDK's default pipeline and retry policy, which retries a
429 after its ``Retry-After``), under an ``asyncio.Semaphore``: what the Airflow operator's
sensor and Kestra do for every run on every poll. It prints one JSON object: the poll's wall time
(first request to last answer), the runs read, the GETs that failed after the SDK's retries (by
HTTP status or exception class), and the statuses read.

The token is static (the emulator accepts any); TLS trust comes from ``SSL_CERT_FILE`` (see
``benchmarks.peer_sdk``).
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

from benchmarks.peer import Run, answer, arguments, read_runs, tally
from benchmarks.peer_sdk import sdk_fan_out

if TYPE_CHECKING:
    from azure.mgmt.datafactory.aio import DataFactoryManagementClient


async def poll_once(runs: list[Run], *, endpoint: str, concurrency: int) -> dict[str, Any]:
    statuses: Counter[str] = Counter()

    async def get(client: DataFactoryManagementClient, run: Run) -> None:
        got = await client.pipeline_runs.get(run["resource_group"], run["factory"], run["run_id"])
        statuses[str(got.status)] += 1

    wall, outcomes, errors = await sdk_fan_out(
        runs, get, endpoint=endpoint, concurrency=concurrency
    )
    return {**tally(wall, outcomes, errors, done="read"), "statuses": dict(statuses)}


def main() -> int:
    parser = arguments(
        "python -m benchmarks.peer_sdk_poll", __doc__,
        runs="JSON list of runs to read", endpoint="https URL of the emulator",
    )  # fmt: skip
    args = parser.parse_args()
    runs = read_runs(args.runs)
    return answer(
        asyncio.run(poll_once(runs, endpoint=args.endpoint, concurrency=args.concurrency))
    )


if __name__ == "__main__":
    sys.exit(main())
