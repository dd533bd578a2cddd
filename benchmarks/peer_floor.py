"""The floor: the least any aiohttp client can do, run as its own process.

``python -m benchmarks.peer_floor RUNS.json --endpoint URL --concurrency N`` POSTs every createRun
with one bare ``aiohttp.ClientSession`` (``trust_env=False``, a fixed bearer token, a semaphore),
no retries, no pacing, no report, no logs. What batchrun or the SDK spend above it is their own;
what it spends is the machine's (TLS, HTTP parsing, the event loop). Prints the same JSON object
as ``peer_sdk``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp


async def trigger_all(
    runs: list[dict[str, Any]], *, endpoint: str, concurrency: int
) -> dict[str, Any]:
    cafile = os.environ.get("SSL_CERT_FILE")
    context = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    gate = asyncio.Semaphore(concurrency)
    errors: Counter[str] = Counter()
    headers = {"Authorization": "Bearer peer-floor-token", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=context)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:

        async def one(run: dict[str, Any]) -> bool:
            url = (
                f"{endpoint}/subscriptions/{quote(run['subscription'])}"
                f"/resourceGroups/{quote(run['resource_group'])}"
                f"/providers/Microsoft.DataFactory/factories/{quote(run['factory'])}"
                f"/pipelines/{quote(run['pipeline'])}/createRun?api-version=2018-06-01"
            )
            body = json.dumps(run["parameters"]).encode()
            async with gate, session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors[str(response.status)] += 1
                    return False
                return True

        started = time.perf_counter()
        outcomes = await asyncio.gather(*(one(run) for run in runs))
        wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "succeeded": sum(outcomes),
        "failed": len(outcomes) - sum(outcomes),
        "errors": dict(errors),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peer_floor", description=__doc__)
    parser.add_argument("runs", type=Path, help="JSON list of runs")
    parser.add_argument("--endpoint", required=True, help="URL of the emulator")
    parser.add_argument("--concurrency", type=int, default=16, help="the semaphore's size")
    args = parser.parse_args()
    runs = json.loads(args.runs.read_text(encoding="utf-8"))
    result = asyncio.run(trigger_all(runs, endpoint=args.endpoint, concurrency=args.concurrency))
    print(json.dumps(result))
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
