"""The floor: the least any aiohttp client can do, run as its own process.

``python -m benchmarks.peer_floor RUNS.json --endpoint URL --concurrency N`` POSTs every createRun
with one bare ``aiohttp.ClientSession`` (``trust_env=False``, a fixed bearer token, a semaphore),
no retries, no pacing, no report, no logs. What batchrun or the SDK spend above it is their own;
what it spends is the machine's (TLS, HTTP parsing, the event loop). Prints the same JSON object
as ``peer_sdk``.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
from collections import Counter
from typing import Any
from urllib.parse import quote

import aiohttp

from benchmarks.peer import Run, answer, arguments, fan_out, read_runs, tally


async def trigger_all(runs: list[Run], *, endpoint: str, concurrency: int) -> dict[str, Any]:
    cafile = os.environ.get("SSL_CERT_FILE")
    context = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    errors: Counter[str] = Counter()
    headers = {"Authorization": "Bearer peer-floor-token", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=context)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:

        async def one(run: Run) -> bool:
            url = (
                f"{endpoint}/subscriptions/{quote(run['subscription'])}"
                f"/resourceGroups/{quote(run['resource_group'])}"
                f"/providers/Microsoft.DataFactory/factories/{quote(run['factory'])}"
                f"/pipelines/{quote(run['pipeline'])}/createRun?api-version=2018-06-01"
            )
            body = json.dumps(run["parameters"]).encode()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors[str(response.status)] += 1
                    return False
                return True

        wall, outcomes = await fan_out(runs, one, concurrency=concurrency)
    return tally(wall, outcomes, errors, done="succeeded")


def main() -> int:
    parser = arguments(
        "python -m benchmarks.peer_floor", __doc__,
        runs="JSON list of runs", endpoint="URL of the emulator",
    )  # fmt: skip
    args = parser.parse_args()
    runs = read_runs(args.runs)
    return answer(
        asyncio.run(trigger_all(runs, endpoint=args.endpoint, concurrency=args.concurrency))
    )


if __name__ == "__main__":
    sys.exit(main())
