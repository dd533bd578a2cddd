"""The batch's connections are opened while the token is asked for, and nothing is sent early."""

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from batchrun.arm.session import open_client
from batchrun.arm.timeouts import Timeouts
from batchrun.arm.transport import build_session
from batchrun.arm.warmup import warm_connections
from batchrun.errors import AuthError, TransportError
from tests.helpers.tls import TlsFiles

PROXY_VARS = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"]
RUN = {"subscription": "sub", "resource_group": "rg", "factory": "df", "run_id": "r1"}


@dataclass
class Server:
    """A TLS server on 127.0.0.1 that counts the connections it accepted and the requests."""

    endpoint: str = ""
    connections: int = 0
    requests: int = 0
    reached: dict[int, asyncio.Event] = field(default_factory=dict)

    def accepted(self) -> None:
        self.connections += 1
        for count, event in self.reached.items():
            if self.connections >= count:
                event.set()

    async def until_connections(self, count: int) -> None:
        event = self.reached.setdefault(count, asyncio.Event())
        if self.connections >= count:
            event.set()
        await event.wait()


@asynccontextmanager
async def tls_server(context: ssl.SSLContext) -> AsyncIterator[Server]:
    server = Server()

    async def handle(request: web.Request) -> web.Response:
        server.requests += 1
        return web.json_response({"runId": "r1", "status": "InProgress"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    handler = runner.server
    assert handler is not None

    def factory() -> Any:
        server.accepted()
        return handler()

    listening = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0, ssl=context)
    server.endpoint = f"https://127.0.0.1:{listening.sockets[0].getsockname()[1]}"
    try:
        yield server
    finally:
        listening.close()
        await runner.cleanup()


class GatedTokens:
    """A token provider that answers once let through, or fails."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.fail = False

    async def get_token(self) -> str:
        await self.gate.wait()
        if self.fail:
            raise AuthError("no token for scope x: test")
        return "test-token"


@pytest.fixture
def trusted(monkeypatch: pytest.MonkeyPatch, tls_files: TlsFiles) -> TlsFiles:
    for name in [*PROXY_VARS, "REQUESTS_CA_BUNDLE"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca))
    return tls_files


async def test_connections_open_while_the_token_is_asked_for_and_the_requests_use_them(
    trusted: TlsFiles,
) -> None:
    tokens = GatedTokens()
    async with tls_server(trusted.server_context()) as server:
        opening = open_client(
            endpoint=server.endpoint, tokens=tokens, timeouts=Timeouts(), connections=4, warm=4
        )
        entering = asyncio.create_task(opening.__aenter__())
        await server.until_connections(4)
        # four connections, and not one request: there is no token yet
        assert (server.connections, server.requests) == (4, 0)
        tokens.gate.set()
        client = await entering
        try:
            await asyncio.gather(*(client.get_pipeline_run(**RUN) for _ in range(4)))
        finally:
            await opening.__aexit__(None, None, None)
    assert (server.connections, server.requests) == (4, 4)


async def test_no_token_sends_nothing_over_the_connections_opened(trusted: TlsFiles) -> None:
    tokens = GatedTokens()
    tokens.fail = True
    async with tls_server(trusted.server_context()) as server:
        opening = open_client(
            endpoint=server.endpoint, tokens=tokens, timeouts=Timeouts(), connections=3, warm=3
        )
        entering = asyncio.create_task(opening.__aenter__())
        await server.until_connections(3)
        tokens.gate.set()
        with pytest.raises(AuthError):
            await entering
    assert (server.connections, server.requests) == (3, 0)


async def test_warm_up_opens_no_more_than_the_connection_limit(trusted: TlsFiles) -> None:
    async with (
        tls_server(trusted.server_context()) as server,
        build_session(timeouts=Timeouts(), limit=2) as session,
    ):
        opened = await warm_connections(session, server.endpoint, count=2, timeouts=Timeouts())
        assert opened == 2
        assert (server.connections, server.requests) == (2, 0)


async def test_a_failed_warm_up_leaves_the_error_to_the_first_request(
    monkeypatch: pytest.MonkeyPatch, tls_files: TlsFiles, tmp_path: Path
) -> None:
    # the client trusts another CA: every handshake fails, in the warm-up and in the request
    (tmp_path / "other").mkdir()
    other = TlsFiles.issue(tmp_path / "other")
    for name in [*PROXY_VARS, "REQUESTS_CA_BUNDLE"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(other.ca))
    tokens = GatedTokens()
    tokens.gate.set()
    async with tls_server(tls_files.server_context()) as server:
        async with open_client(
            endpoint=server.endpoint, tokens=tokens, timeouts=Timeouts(), connections=2, warm=2
        ) as client:
            with pytest.raises(TransportError) as raised:
                await client.get_pipeline_run(**RUN)
        assert raised.value.code == "TlsCertificateError"
        assert server.requests == 0


async def test_nothing_is_opened_ahead_through_a_proxy(
    trusted: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with tls_server(trusted.server_context()) as server:
        # a proxy would need a CONNECT request to open the connection: none is made
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
        async with build_session(timeouts=Timeouts(), limit=2) as session:
            endpoint = server.endpoint.replace("127.0.0.1", "adf.invalid")
            opened = await warm_connections(session, endpoint, count=2, timeouts=Timeouts())
    assert (opened, server.connections) == (0, 0)
