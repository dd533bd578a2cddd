"""Bearer tokens for the management API, cached and refreshed before they expire."""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import TYPE_CHECKING, Protocol

from batchrun.errors import AuthError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from azure.core.credentials_async import AsyncTokenCredential
    from azure.core.exceptions import AzureError

# A JWT (header.payload.signature, base64url): what a token looks like if one leaks into a message.
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")


# DefaultAzureCredential's message when no credential of its chain gave a token
_CHAIN_FAILED = "failed to retrieve a token from the included credentials"
# "\tEnvironmentCredential: EnvironmentCredential authentication unavailable. Environment ..."
_ATTEMPT = re.compile(r"^\s+(\w+Credential): (.*)$", re.MULTILINE)
_CHAIN_NAMES = {
    "EnvironmentCredential": "environment variables",
    "WorkloadIdentityCredential": "workload identity",
    "ManagedIdentityCredential": "managed identity",
    "SharedTokenCacheCredential": "the shared token cache",
    "VisualStudioCodeCredential": "VS Code",
    "AzureCliCredential": "Azure CLI",
    "AzurePowerShellCredential": "Azure PowerShell",
    "AzureDeveloperCliCredential": "Azure Developer CLI",
}
_SAID_CHARS = 110


def chain_explanation(scope: str, message: str, environ: Mapping[str, str]) -> str:
    """One line that names what was tried and the fix, then one short line per credential."""
    attempts = _ATTEMPT.findall(message)
    tried = ", ".join(_CHAIN_NAMES.get(name, name) for name, _ in attempts) or "its credentials"
    lines = [f"no token for scope {scope}: tried {tried}; none gave one. {_fix(environ)}"]
    for name, said in attempts:
        said = said.replace(f"{name} authentication unavailable. ", "").strip()
        said = said if len(said) <= _SAID_CHARS else said[: _SAID_CHARS - 1] + "…"
        lines.append(f"  {name}: {said}")
    return "\n".join(lines)


def _azure_error() -> type[AzureError]:
    # imported when a failure is being matched: azure-core's package import (its pipeline, ~0.03 s)
    # stays off a start whose first token was fetched ahead
    from azure.core.exceptions import AzureError

    return AzureError


def _fix(environ: Mapping[str, str]) -> str:
    endpoint, header = environ.get("IDENTITY_ENDPOINT"), environ.get("IDENTITY_HEADER")
    if bool(endpoint) != bool(header):
        missing = "IDENTITY_HEADER" if endpoint else "IDENTITY_ENDPOINT"
        return (
            f"Fix: set {missing} too: a managed identity endpoint (the emulator's as well) needs "
            "IDENTITY_ENDPOINT and IDENTITY_HEADER together."
        )
    if endpoint:
        return (
            f"Fix: IDENTITY_ENDPOINT={endpoint} gave no token: is the identity endpoint (for the "
            'emulator: eval "$(batchrun emulator --background)") running, with this '
            "IDENTITY_HEADER?"
        )
    return (
        "Fix: sign in with `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
        "AZURE_CLIENT_SECRET; for the local emulator set IDENTITY_ENDPOINT and IDENTITY_HEADER "
        '(eval "$(batchrun emulator --background)" sets both).'
    )


class TokenProvider(Protocol):
    async def get_token(self) -> str: ...


class Token(Protocol):
    """A bearer token and when it expires (azure-core's ``AccessToken`` is one)."""

    @property
    def token(self) -> str: ...

    @property
    def expires_on(self) -> int:
        """Seconds since the epoch."""
        ...


class TokenSource(Protocol):
    """What :class:`CredentialTokens` asks: any azure-core async credential, or the token
    fetched ahead (:mod:`batchrun.arm.tokenahead`), which raises :class:`AuthError` itself."""

    async def get_token(self, *scopes: str) -> Token: ...

    async def close(self) -> None: ...


class CredentialFactory(Protocol):
    """Builds a credential chain; ``DefaultAzureCredential`` is one (tests pass a recorder)."""

    def __call__(self, *, authority: str) -> AsyncTokenCredential: ...


def _azure_default(*, authority: str) -> AsyncTokenCredential:
    from azure.identity.aio import DefaultAzureCredential

    from batchrun.arm.transport import identity_transport

    return DefaultAzureCredential(authority=authority, transport=identity_transport())


def default_credential(
    *, authority: str, factory: CredentialFactory = _azure_default
) -> AsyncTokenCredential:
    """The standard Azure credential chain (``DefaultAzureCredential``), signing in at
    ``authority``: the cloud's Microsoft Entra host (:attr:`batchrun.arm.cloud.Cloud.authority`).
    A service principal of a sovereign cloud exists only in that cloud's directory, so signing
    in at the public cloud's fails; managed identities and the Azure CLI ignore it (they sign in
    where they live).

    In order it tries: environment variables (``AZURE_TENANT_ID``/``AZURE_CLIENT_ID`` with
    ``AZURE_CLIENT_SECRET`` or a certificate), workload identity, managed identity (IMDS, or the
    App Service / Container Apps endpoint given by ``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``),
    then developer sign-ins (Azure CLI, PowerShell, azd). For a user-assigned managed identity set
    ``AZURE_CLIENT_ID`` to its client id. ``HTTPS_PROXY``/``HTTP_PROXY`` apply to Entra ID, never
    to the local identity endpoints (loopback ``IDENTITY_ENDPOINT``, link-local IMDS).
    """
    return factory(authority=authority)


class CredentialTokens:
    """A :class:`TokenProvider` over any azure-core async credential (any :class:`TokenSource`).

    The token is cached and refreshed once it is within ``refresh_margin_s`` of expiry. Concurrent
    callers that find it stale share one refresh; if that refresh fails they all get its error.
    """

    def __init__(
        self,
        credential: TokenSource,
        scope: str,
        *,
        refresh_margin_s: float = 300,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self._environ = environ
        self._credential = credential
        self._scope = scope
        self._refresh_margin_s = refresh_margin_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: Token | None = None
        # Bumped by every completed refresh, so callers queued on the lock can tell that the
        # refresh they were waiting for already happened (or failed) and need not repeat it.
        self._generation = 0
        self._error: AuthError | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scope={self._scope!r}, cached={self._token is not None})"

    def _cached(self) -> Token | None:
        token = self._token
        if token is not None and self._clock() < token.expires_on - self._refresh_margin_s:
            return token
        return None

    async def get_token(self) -> str:
        return (await self.access_token()).token

    async def access_token(self) -> Token:
        """The token with its expiry (the child of :mod:`batchrun.arm.tokenahead` hands on both)."""
        cached = self._cached()
        if cached is not None:
            return cached
        generation = self._generation
        async with self._lock:
            if self._generation != generation:
                if self._error is not None:
                    raise AuthError(str(self._error)) from self._error.__cause__
                cached = self._cached()
                if cached is not None:
                    return cached
            return await self._refresh()

    async def _refresh(self) -> Token:
        try:
            token = await self._credential.get_token(self._scope)
        except AuthError as exc:  # the token fetched ahead: its failure already in these words
            self._error = exc
            self._generation += 1
            raise
        # not only ClientAuthenticationError (CredentialUnavailableError is one): once a
        # credential has handed out a token, a failing token endpoint surfaces as the
        # ServiceRequestError/ServiceResponseError/HttpResponseError of azure-core's pipeline,
        # and that too means no token
        except _azure_error() as exc:
            self._error = AuthError(self._explain(exc))
            self._generation += 1
            raise self._error from exc
        self._token, self._error = token, None
        self._generation += 1
        return token

    def _explain(self, exc: AzureError) -> str:
        message = str(exc.message or exc).strip() or type(exc).__name__
        message = _JWT.sub("<redacted>", message)
        if self._token is not None:
            message = message.replace(self._token.token, "<redacted>")
        if _CHAIN_FAILED in message:
            return chain_explanation(self._scope, message, self._environ)
        return f"no token for scope {self._scope}: {message}"

    async def close(self) -> None:
        await self._credential.close()
