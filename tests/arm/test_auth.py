import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import AzureAuthorityHosts, CredentialUnavailableError
from azure.identity.aio import DefaultAzureCredential

from batchrun.arm.auth import CredentialTokens, default_credential
from batchrun.arm.cloud import CLOUDS, get_cloud
from batchrun.errors import AuthError
from tests.helpers.clock import FakeTime

SCOPE = "https://management.azure.com/.default"
PUBLIC = CLOUDS["AzurePublicCloud"]
JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQifQ.c2lnbmF0dXJl"
CHAIN_FAILURE = (
    "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
    "Attempted credentials:\n"
    "\tEnvironmentCredential: EnvironmentCredential authentication unavailable.\n"
    "\tManagedIdentityCredential: ManagedIdentityCredential authentication unavailable.\n"
    "To mitigate this issue, please refer to the troubleshooting guidelines here at "
    "https://aka.ms/azsdk/python/identity/defaultazurecredential/troubleshoot."
)


class FakeCredential:
    """Hands out ``token-1``, ``token-2``… for ``lifetime_s``; can be gated or made to fail."""

    def __init__(self, clock: FakeTime, *, lifetime_s: float = 3600) -> None:
        self.clock = clock
        self.lifetime_s = lifetime_s
        self.calls = 0
        self.scopes: tuple[str, ...] = ()
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None
        self.closed = False

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        self.scopes = scopes
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return AccessToken(f"token-{self.calls}", int(self.clock.time() + self.lifetime_s))

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> "FakeCredential":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def credential(clock: FakeTime) -> FakeCredential:
    return FakeCredential(clock)


@pytest.fixture
async def tokens(credential: FakeCredential, clock: FakeTime) -> AsyncIterator[CredentialTokens]:
    provider = CredentialTokens(credential, SCOPE, refresh_margin_s=300, clock=clock.time)
    yield provider
    await provider.close()


async def test_token_is_fetched_for_the_scope_and_cached(
    tokens: CredentialTokens, credential: FakeCredential
) -> None:
    assert await tokens.get_token() == "token-1"
    assert await tokens.get_token() == "token-1"
    assert credential.calls == 1
    assert credential.scopes == (SCOPE,)


@pytest.mark.parametrize(
    ("elapsed_s", "expected"),
    [
        (0, "token-1"),
        (3299, "token-1"),  # 301 s left: still outside the margin
        (3300, "token-2"),  # 300 s left: refresh
        (4000, "token-2"),  # already expired
    ],
)
async def test_token_is_refreshed_within_the_margin_of_expiry(
    tokens: CredentialTokens, clock: FakeTime, elapsed_s: float, expected: str
) -> None:
    await tokens.get_token()
    clock.advance(elapsed_s)
    assert await tokens.get_token() == expected


async def test_concurrent_callers_share_one_refresh(
    tokens: CredentialTokens, credential: FakeCredential
) -> None:
    credential.gate = asyncio.Event()
    callers = [asyncio.create_task(tokens.get_token()) for _ in range(10)]
    await asyncio.sleep(0)
    credential.gate.set()
    assert await asyncio.gather(*callers) == ["token-1"] * 10
    assert credential.calls == 1


async def test_concurrent_callers_share_one_failed_refresh(
    tokens: CredentialTokens, credential: FakeCredential
) -> None:
    credential.gate = asyncio.Event()
    credential.fail = ClientAuthenticationError(message=CHAIN_FAILURE)
    callers = [asyncio.create_task(tokens.get_token()) for _ in range(10)]
    await asyncio.sleep(0)
    credential.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(result, AuthError) for result in results)
    assert credential.calls == 1


async def test_a_failed_refresh_is_tried_again_by_the_next_caller(
    tokens: CredentialTokens, credential: FakeCredential
) -> None:
    credential.fail = ClientAuthenticationError(message="temporarily broken")
    with pytest.raises(AuthError):
        await tokens.get_token()
    credential.fail = None
    assert await tokens.get_token() == "token-2"


@pytest.mark.parametrize(
    "failure",
    [
        ClientAuthenticationError(message=CHAIN_FAILURE),
        CredentialUnavailableError(message=CHAIN_FAILURE),
    ],
)
async def test_auth_error_leads_with_what_was_tried_and_the_fix_then_each_credential(
    tokens: CredentialTokens, credential: FakeCredential, failure: Exception
) -> None:
    credential.fail = failure
    with pytest.raises(AuthError) as caught:
        await tokens.get_token()
    lead, *said = str(caught.value).splitlines()
    assert lead.startswith(f"no token for scope {SCOPE}: tried environment variables, ")
    assert "az login" in lead
    assert said == [
        "  EnvironmentCredential: EnvironmentCredential authentication unavailable.",
        "  ManagedIdentityCredential: ManagedIdentityCredential authentication unavailable.",
    ]
    message = str(caught.value)
    assert "Traceback" not in message
    assert caught.value.__cause__ is failure


async def test_other_exceptions_are_not_disguised_as_auth_errors(
    tokens: CredentialTokens, credential: FakeCredential
) -> None:
    credential.fail = RuntimeError("a bug")
    with pytest.raises(RuntimeError):
        await tokens.get_token()


async def test_tokens_never_appear_in_errors_or_repr(
    tokens: CredentialTokens, credential: FakeCredential, clock: FakeTime
) -> None:
    first = await tokens.get_token()
    clock.advance(3600)
    credential.fail = ClientAuthenticationError(
        message=f"refresh of {first} failed; server said: bad assertion {JWT}"
    )
    with pytest.raises(AuthError) as caught:
        await tokens.get_token()
    shown = f"{caught.value} {caught.value!r} {tokens!r}"
    assert first not in shown
    assert JWT not in shown
    assert "<redacted>" in shown


async def test_close_closes_the_credential(credential: FakeCredential) -> None:
    provider = CredentialTokens(credential, SCOPE)
    await provider.close()
    assert credential.closed


# --- DefaultAzureCredential over the App Service / Container Apps managed identity endpoint

_AZURE_ENV = [
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_TOKEN_CREDENTIALS",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
]


@pytest.fixture
async def identity_endpoint(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[web.Request]]:
    """A loopback managed-identity endpoint speaking the App Service protocol (2019-08-01)."""
    seen: list[web.Request] = []

    async def issue(request: web.Request) -> web.Response:
        seen.append(request)
        if request.headers.get("X-IDENTITY-HEADER") != "identity-secret":
            return web.json_response({"error": "bad header"}, status=401)
        return web.json_response(
            {
                "access_token": "managed-identity-token",
                "expires_on": str(int(time.time()) + 3600),
                "resource": request.query["resource"],
                "token_type": "Bearer",
            }
        )

    app = web.Application()
    app.router.add_get("/msi/token", issue)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    for name in _AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{port}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "identity-secret")
    monkeypatch.setenv("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
    yield seen
    await runner.cleanup()


async def test_default_credential_uses_the_identity_endpoint(
    identity_endpoint: list[web.Request],
) -> None:
    tokens = CredentialTokens(default_credential(authority=PUBLIC.authority), SCOPE)
    try:
        assert await tokens.get_token() == "managed-identity-token"
    finally:
        await tokens.close()
    request = identity_endpoint[0]
    assert request.query["resource"] == "https://management.azure.com"
    assert request.query["client_id"] == "11111111-2222-3333-4444-555555555555"


# --- the cloud's sign-in authority


@pytest.mark.parametrize(
    ("name", "authority"),
    [
        ("AzurePublicCloud", AzureAuthorityHosts.AZURE_PUBLIC_CLOUD),
        ("AzureCloud", AzureAuthorityHosts.AZURE_PUBLIC_CLOUD),
        ("AzureUSGovernment", AzureAuthorityHosts.AZURE_GOVERNMENT),
        ("azureusgovernment", AzureAuthorityHosts.AZURE_GOVERNMENT),
        ("AzureChinaCloud", AzureAuthorityHosts.AZURE_CHINA),
        ("AZURECHINACLOUD", AzureAuthorityHosts.AZURE_CHINA),
    ],
)
def test_the_credential_signs_in_at_the_clouds_authority(name: str, authority: str) -> None:
    built: list[str] = []

    def factory(*, authority: str) -> FakeCredential:
        built.append(authority)
        return FakeCredential(FakeTime())

    credential = default_credential(authority=get_cloud(name).authority, factory=factory)
    assert isinstance(credential, FakeCredential)
    assert built == [authority]


@pytest.mark.parametrize("name", sorted(CLOUDS))
async def test_the_default_chain_is_built_for_the_authority(
    name: str, identity_endpoint: list[web.Request]
) -> None:
    # the real DefaultAzureCredential takes the authority (and still reaches the managed identity)
    cloud = CLOUDS[name]
    credential = default_credential(authority=cloud.authority)
    try:
        assert isinstance(credential, DefaultAzureCredential)
        token = await credential.get_token(cloud.scope)
    finally:
        await credential.close()
    assert token.token == "managed-identity-token"
    assert identity_endpoint[0].query["resource"] == cloud.scope.removesuffix("/.default")
