"""Opening the ADF client a command talks through: token provider, the one session, the client.

``batchrun run`` and ``batchrun recover`` both open it here, so both ask for a token before
anything is sent and both close what they opened, in the same order.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from batchrun.arm.auth import CredentialTokens, TokenProvider, default_credential
from batchrun.arm.client import USER_AGENT, AdfClient
from batchrun.arm.transport import build_session

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from batchrun.arm.cloud import Cloud
    from batchrun.arm.timeouts import Timeouts

__all__ = ["credential_tokens", "open_client"]


@asynccontextmanager
async def credential_tokens(cloud: Cloud) -> AsyncIterator[CredentialTokens]:
    """Tokens for ``cloud``'s management scope from azure-identity's default chain, signing in
    at the cloud's authority; the credential is closed on exit."""
    tokens = CredentialTokens(default_credential(authority=cloud.authority), cloud.scope)
    try:
        yield tokens
    finally:
        await tokens.close()


@asynccontextmanager
async def open_client(
    *, endpoint: str, tokens: TokenProvider, timeouts: Timeouts, connections: int
) -> AsyncIterator[AdfClient]:
    """An :class:`AdfClient` for ``endpoint`` over a new session of at most ``connections``.

    A token is asked for first: when none can be had, :class:`~batchrun.errors.AuthError` is
    raised before a connection is opened, so nothing is sent.
    """
    await tokens.get_token()
    async with build_session(timeouts=timeouts, limit=connections) as session:
        yield AdfClient(
            session=session,
            endpoint=endpoint,
            tokens=tokens,
            user_agent=USER_AGENT,
            timeouts=timeouts,
        )
