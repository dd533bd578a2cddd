"""``--endpoint`` moves where requests go, never which token is asked for: the token's scope is
the ``--cloud``'s, end to end through the real CLI and a managed-identity endpoint that records
what it was asked for."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.helpers.cli import (
    CLI_TIMEOUT_S,
    IDENTITY_HEADER,
    StartEmulator,
    cli_env,
    create_answers,
    manifest_text,
    start,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = pytest.mark.e2e


class RecordingIdentity:
    """A managed-identity token endpoint (App Service style) that keeps each ``resource``."""

    def __init__(self) -> None:
        self.resources: list[str] = []

    async def token(self, request: web.Request) -> web.Response:
        assert request.headers.get("X-IDENTITY-HEADER") == IDENTITY_HEADER
        self.resources.append(request.query["resource"])
        return web.json_response(
            {
                "access_token": "recorded-identity-token-0123456789",
                "expires_on": str(int(time.time()) + 3600),
                "resource": request.query["resource"],
                "token_type": "Bearer",
            }
        )


@pytest.fixture
async def identity() -> AsyncIterator[tuple[RecordingIdentity, str]]:
    recorder = RecordingIdentity()
    app = web.Application()
    app.router.add_get("/msi/token", recorder.token)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield recorder, str(server.make_url("/msi/token"))
    await server.close()


@pytest.mark.parametrize(
    ("cloud", "resource"),
    [
        ("AzureUSGovernment", "https://management.usgovcloudapi.net"),
        ("AzureChinaCloud", "https://management.chinacloudapi.cn"),
    ],
)
async def test_an_endpoint_override_keeps_the_clouds_token_scope(
    tmp_path: Path,
    start_emulator: StartEmulator,
    identity: tuple[RecordingIdentity, str],
    cloud: str,
    resource: str,
) -> None:
    recorder, token_url = identity
    emulator = start(start_emulator, "--accept-any")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text(1))
    env = cli_env(emulator) | {"IDENTITY_ENDPOINT": token_url}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "batchrun", "run", str(manifest),
        "--report", str(tmp_path / "report.jsonl"), "--cloud", cloud,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(child.communicate(), CLI_TIMEOUT_S)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise
    assert child.returncode == 0, err.decode()[-2000:]
    assert create_answers(emulator) == {"200": 1}
    assert {r.rstrip("/") for r in recorder.resources} == {resource}
