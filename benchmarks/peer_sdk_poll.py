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

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError
from azure.mgmt.datafactory.aio import DataFactoryManagementClient

from benchmarks.peer_sdk import StaticToken


async def poll_once(
    runs: list[dict[str, Any]], *, endpoint: str, concurrency: int
) -> dict[str, Any]:
    credential = StaticToken("peer-sdk-token")
    clients = {
        sub: DataFactoryManagementClient(credential, sub, base_url=endpoint)
        for sub in dict.fromkeys(run["subscription"] for run in runs)
    }
    gate = asyncio.Semaphore(concurrency)
    errors: Counter[str] = Counter()
    statuses: Counter[str] = Counter()

    async def one(run: dict[str, Any]) -> bool:
        async with gate:
            try:
                got = await clients[run["subscription"]].pipeline_runs.get(
                    run["resource_group"], run["factory"], run["run_id"]
                )
            except HttpResponseError as exc:
                errors[str(exc.status_code)] += 1
                return False
            except AzureError as exc:
                errors[type(exc).__name__] += 1
                return False
            statuses[str(got.status)] += 1
            return True

    try:
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(one(run) for run in runs))
        wall = time.perf_counter() - started
    finally:
        for client in clients.values():
            await client.close()
    return {
        "wall_s": wall,
        "read": sum(outcomes),
        "failed": len(outcomes) - sum(outcomes),
        "errors": dict(errors),
        "statuses": dict(statuses),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peer_sdk_poll", description=__doc__)
    parser.add_argument("runs", type=Path, help="JSON list of runs to read")
    parser.add_argument("--endpoint", required=True, help="https URL of the emulator")
    parser.add_argument("--concurrency", type=int, default=16, help="the semaphore's size")
    args = parser.parse_args()
    runs = json.loads(args.runs.read_text(encoding="utf-8"))
    result = asyncio.run(poll_once(runs, endpoint=args.endpoint, concurrency=args.concurrency))
    print(json.dumps(result))
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
