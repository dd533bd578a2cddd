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

import asyncio
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from azure.core.credentials import AccessToken
from azure.core.exceptions import AzureError, HttpResponseError
from azure.mgmt.datafactory.aio import DataFactoryManagementClient

from benchmarks.peer import Run, answer, arguments, fan_out, read_runs, tally

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


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


async def sdk_fan_out(
    runs: list[Run],
    call: Callable[[DataFactoryManagementClient, Run], Awaitable[object]],
    *,
    endpoint: str,
    concurrency: int,
    **options: Any,
) -> tuple[float, list[bool], Counter[str]]:
    """``call`` for every run with its subscription's client (one per subscription, the SDK's
    default pipeline and retry policy): the wall time, the outcomes, the failures by HTTP
    status or, where there was no answer, by exception class."""
    credential = StaticToken("peer-sdk-token")
    clients = {
        sub: DataFactoryManagementClient(credential, sub, base_url=endpoint, **options)
        for sub in dict.fromkeys(run["subscription"] for run in runs)
    }
    errors: Counter[str] = Counter()

    async def one(run: Run) -> bool:
        try:
            await call(clients[run["subscription"]], run)
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
        wall, outcomes = await fan_out(runs, one, concurrency=concurrency)
    finally:
        for client in clients.values():
            await client.close()
    return wall, outcomes, errors


async def trigger_all(
    runs: list[Run],
    *,
    endpoint: str,
    concurrency: int,
    read_timeout: float | None = None,
) -> dict[str, Any]:
    async def create_run(client: DataFactoryManagementClient, run: Run) -> object:
        return await client.pipelines.create_run(
            run["resource_group"], run["factory"], run["pipeline"], run["parameters"]
        )

    options: dict[str, Any] = {} if read_timeout is None else {"read_timeout": read_timeout}
    wall, outcomes, errors = await sdk_fan_out(
        runs, create_run, endpoint=endpoint, concurrency=concurrency, **options
    )
    return tally(wall, outcomes, errors, done="succeeded")


def main() -> int:
    parser = arguments(
        "python -m benchmarks.peer_sdk", __doc__,
        runs="JSON list of runs", endpoint="https URL of the emulator",
    )  # fmt: skip
    parser.add_argument(
        "--read-timeout",
        type=float,
        metavar="SECONDS",
        help="the client's read_timeout (default: the SDK's, 300 s)",
    )
    args = parser.parse_args()
    result = asyncio.run(
        trigger_all(
            read_runs(args.runs),
            endpoint=args.endpoint,
            concurrency=args.concurrency,
            read_timeout=args.read_timeout,
        )
    )
    return answer(result)


if __name__ == "__main__":
    sys.exit(main())
