"""The peer: what a user would write without batchrun, run as its own process.

``python -m benchmarks.peer_sdk RUNS.json --endpoint URL --concurrency N`` triggers every run in
RUNS.json (a list of ``{subscription, resource_group, factory, pipeline, parameters}``) with
azure-mgmt-datafactory's aio client: one ``DataFactoryManagementClient`` per subscription,
``pipelines.create_run`` fanned out with ``asyncio.gather`` under an ``asyncio.Semaphore``, the
SDK's default pipeline (retry policy included) untouched. It prints one JSON object: the batch
wall time (first request to last answer, client set-up excluded), successes and failures (a run
whose ``create_run`` raised, after the SDK's own retries, counts as failed; ``errors`` counts them
by HTTP status, or by exception class where there was no answer).

``--read-timeout SECONDS`` sets the client's ``read_timeout`` (azure-core's aiohttp transport
turns it into aiohttp's ``sock_read``; its default is 300 s), so that an answer slower than that
is lost, as it is for ``batchrun run --read-timeout``.

The token is static (the emulator accepts any); TLS trust comes from ``SSL_CERT_FILE``, which the
SDK's aiohttp transport honours through OpenSSL's default verify paths. (``connection_verify=PATH``
would make azure-core build a new ``SSLContext`` for every request, and aiohttp keys its
connection pool on the context: every request would pay a fresh TLS handshake.)
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

from azure.core.credentials import AccessToken
from azure.core.exceptions import AzureError, HttpResponseError
from azure.mgmt.datafactory.aio import DataFactoryManagementClient


class StaticToken:
    """An ``AsyncTokenCredential`` that always answers the same bearer token."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StaticToken:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None


async def trigger_all(
    runs: list[dict[str, Any]],
    *,
    endpoint: str,
    concurrency: int,
    read_timeout: float | None = None,
) -> dict[str, Any]:
    credential = StaticToken("peer-sdk-token")
    options: dict[str, Any] = {} if read_timeout is None else {"read_timeout": read_timeout}
    clients = {
        sub: DataFactoryManagementClient(credential, sub, base_url=endpoint, **options)
        for sub in dict.fromkeys(run["subscription"] for run in runs)
    }
    gate = asyncio.Semaphore(concurrency)
    errors: Counter[str] = Counter()

    async def one(run: dict[str, Any]) -> bool:
        async with gate:
            try:
                await clients[run["subscription"]].pipelines.create_run(
                    run["resource_group"], run["factory"], run["pipeline"], run["parameters"]
                )
            except HttpResponseError as exc:
                errors[str(exc.status_code)] += 1
                return False
            except AzureError as exc:
                # no answer: a dropped connection (ServiceRequestError), a read timeout
                # (ServiceResponseTimeoutError); azure-core does not retry these for a POST
                errors[type(exc).__name__] += 1
                return False
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
        "succeeded": sum(outcomes),
        "failed": len(outcomes) - sum(outcomes),
        "errors": dict(errors),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peer_sdk", description=__doc__)
    parser.add_argument("runs", type=Path, help="JSON list of runs")
    parser.add_argument("--endpoint", required=True, help="https URL of the emulator")
    parser.add_argument("--concurrency", type=int, default=16, help="the semaphore's size")
    parser.add_argument(
        "--read-timeout",
        type=float,
        metavar="SECONDS",
        help="the client's read_timeout (default: the SDK's, 300 s)",
    )
    args = parser.parse_args()
    runs = json.loads(args.runs.read_text(encoding="utf-8"))
    result = asyncio.run(
        trigger_all(
            runs,
            endpoint=args.endpoint,
            concurrency=args.concurrency,
            read_timeout=args.read_timeout,
        )
    )
    print(json.dumps(result))
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
