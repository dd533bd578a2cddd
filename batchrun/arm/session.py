"""Opening the ADF client a command talks through: token provider, the one session, the client.

``batchrun run`` and ``batchrun recover`` both open it here, so both have a token before any
request is sent and both close what they opened, in the same order.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from batchrun.arm.auth import CredentialTokens, TokenProvider, default_credential
from batchrun.arm.client import USER_AGENT, AdfClient
from batchrun.arm.transport import build_session
from batchrun.arm.warmup import warm_connections

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from batchrun.arm.auth import TokenSource
    from batchrun.arm.cloud import Cloud
    from batchrun.arm.timeouts import Timeouts
    from batchrun.arm.tokenahead import TokenAhead

__all__ = ["credential_tokens", "open_client"]


@asynccontextmanager
async def credential_tokens(
    cloud: Cloud, *, ahead: TokenAhead | None = None
) -> AsyncIterator[CredentialTokens]:
    """Tokens for ``cloud``'s management scope from azure-identity's default chain, signing in
    at the cloud's authority; the first one from ``ahead``, the child that fetched it, when
    given (:mod:`batchrun.arm.tokenahead`). The credential (and the child) are closed on exit."""
    source: TokenSource = default_credential(authority=cloud.authority) if ahead is None else ahead
    tokens = CredentialTokens(source, cloud.scope)
    try:
        yield tokens
    finally:
        await tokens.close()


@asynccontextmanager
async def open_client(
    *,
    endpoint: str,
    tokens: TokenProvider,
    timeouts: Timeouts,
    connections: int,
    warm: int = 0,
) -> AsyncIterator[AdfClient]:
    """An :class:`AdfClient` for ``endpoint`` over a new session of at most ``connections``.

    A token is asked for first: when none can be had, :class:`~batchrun.errors.AuthError` is
    raised before a request is sent, so nothing is sent. Meanwhile up to ``warm`` connections
    (at most ``connections``) are opened to the endpoint, for the first requests to find ready
    (:mod:`batchrun.arm.warmup`); without a token they are closed unused.
    """
    async with build_session(timeouts=timeouts, limit=connections) as session:
        warming = asyncio.create_task(
            warm_connections(session, endpoint, count=min(warm, connections), timeouts=timeouts)
        )
        try:
            await tokens.get_token()
            # the warm-up is not awaited: a request that finds no connection ready waits for
            # one being opened (the pool's limit counts them) or opens its own
            yield AdfClient(
                session=session,
                endpoint=endpoint,
                tokens=tokens,
                user_agent=USER_AGENT,
                timeouts=timeouts,
            )
        finally:
            warming.cancel()
            await asyncio.gather(warming, return_exceptions=True)
