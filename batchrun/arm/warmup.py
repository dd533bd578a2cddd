"""Opening a batch's connections while the token is still being asked for.

A batch's first requests would each wait for a TCP connect and a TLS handshake, all at once, at
the moment every subscription's write budget is full and refilling into nothing. Opened while the
token is fetched (a round trip to the identity endpoint or Entra ID, or an ``az`` process), they
are ready when the first request is, or nearly. A connection is opened and put in the session's
pool: no byte of HTTP goes over it, so nothing is sent before the token is in hand. TLS
verification is the session's own. A connection that cannot be opened is left to the batch,
which opens it (and meets its error) as it always did.

Only the token fetch is overlapped, not the import of azure-identity before it: in a worker
thread that import and the handshakes took turns on the GIL, and the start-up grew by more than
the batch gained (bench ``multi``, loopback: +0.08 s, -0.02 s).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp
from yarl import URL

from batchrun.arm.transport import client_timeout, proxy_for
from batchrun.errors import UsageError
from batchrun.log import get_logger

if TYPE_CHECKING:
    from batchrun.arm.timeouts import Timeouts

__all__ = ["warm_connections"]

_log = get_logger("batchrun.arm.warmup")


async def warm_connections(
    session: aiohttp.ClientSession, endpoint: str, *, count: int, timeouts: Timeouts
) -> int:
    """Open up to ``count`` connections to ``endpoint``'s host and leave them in ``session``'s
    pool, where its requests to that host find them; returns how many were opened.

    None through a proxy (opening one there is a ``CONNECT`` request). Failures are not raised.
    """
    try:
        proxied = proxy_for(endpoint).url is not None
    except UsageError:  # the client refuses this endpoint itself, once the token is in hand
        return 0
    if count < 1 or proxied:
        return 0
    connector = session.connector
    if connector is None:
        return 0
    # the request is never sent: it only names the pool's key, as the session's own requests do
    # (no proxy, the connector's TLS context, the URL's host as the server name)
    request = aiohttp.ClientRequest("GET", URL(endpoint), loop=asyncio.get_running_loop(), ssl=True)
    timeout = client_timeout(timeouts)

    async def one() -> None:
        connection = await connector.connect(request, [], timeout)
        connection.release()

    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    failures = [result for result in results if isinstance(result, BaseException)]
    if failures:
        # the batch's requests open these connections themselves and report their errors
        _log.debug("connections not opened ahead", failed=len(failures), error=str(failures[0]))
    return count - len(failures)
