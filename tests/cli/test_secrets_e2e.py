"""Where the token may go, end to end through the real CLI: only to the cloud's host, loopback or
an allowed host; never through a proxy to loopback; never back out in an echoed error."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer

from batchrun.emulator import process
from tests.helpers.cli import (
    CLI_TIMEOUT_S,
    IDENTITY_HEADER,
    SUB_A,
    StartEmulator,
    cli_env,
    create_answers,
    manifest_text,
    run_cli,
    start,
)
from tests.helpers.paths import ROOT

if TYPE_CHECKING:
    from pathlib import Path

    from batchrun.emulator.process import EmulatorProcess

pytestmark = pytest.mark.e2e

# Opaque, not JWT-shaped, with the characters JSON may escape: only knowing it can redact it.
TOKEN = "opaque/e2e+secret/token-0123456789abcdef"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@dataclass
class Cli:
    code: int
    stdout: str
    stderr: str


async def cli(env: dict[str, str], *args: str) -> Cli:
    """``python -m batchrun ARGS`` without blocking the loop that serves its peers."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "batchrun",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(), CLI_TIMEOUT_S)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise
    assert child.returncode is not None
    return Cli(child.returncode, out.decode(), err.decode())


def logged_events(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


# --- 12: the token goes only to the cloud's management host, loopback, or an allowed host


def test_an_endpoint_off_the_cloud_is_refused_before_any_token_is_asked_for(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    identity = start(start_emulator, "--accept-any", "--expect-token", TOKEN)
    (tmp_path / "manifest.yaml").write_text(manifest_text(2))
    env = cli_env(identity) | {"BATCHRUN_ENDPOINT": "https://arm.contoso.example"}
    run = ["run", str(tmp_path / "manifest.yaml"), "--report", str(tmp_path / "r.jsonl")]
    done = asyncio.run(cli(env, *run, "--max-attempts", "1"))
    assert done.code == 2, done.stderr
    assert "'arm.contoso.example'" in done.stderr
    assert "'management.azure.com'" in done.stderr
    assert "--allow-endpoint arm.contoso.example" in done.stderr
    assert "BATCHRUN_ALLOW_ENDPOINT" in done.stderr
    assert "Traceback" not in done.stderr
    assert identity.stats()["requests"].get("msiToken", {}) == {}


@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_allowed_endpoint_host_is_used_and_logged(
    tmp_path: Path, start_emulator: StartEmulator, how: str
) -> None:
    identity = start(start_emulator, "--accept-any")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text(2))
    env = cli_env(identity) | {"BATCHRUN_ENDPOINT": "https://arm.contoso.example/arm"}
    args = ["run", str(manifest), "--dry-run", "--log-format", "json"]
    if how == "flag":
        args += ["--allow-endpoint", "other.example", "--allow-endpoint", "ARM.contoso.example"]
    else:
        env["BATCHRUN_ALLOW_ENDPOINT"] = "other.example, arm.contoso.example"
    done = asyncio.run(cli(env, *args))
    assert done.code == 0, done.stderr
    assert f"https://arm.contoso.example/arm/subscriptions/{SUB_A}/" in done.stdout
    endpoint_lines = [e for e in logged_events(done.stderr) if e.get("event") == "endpoint"]
    assert len(endpoint_lines) == 1
    assert endpoint_lines[0]["host"] == "arm.contoso.example"
    assert endpoint_lines[0]["cloud"] == "AzurePublicCloud"
    assert endpoint_lines[0]["allowed_by"] == "--allow-endpoint"


def test_a_run_logs_the_endpoint_host_it_sends_to(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(start_emulator, "--accept-any")
    result = run_cli(tmp_path, emulator, manifest_text(2), "--cloud", "AzureUSGovernment")
    assert result.code == 0, result.stderr
    endpoint_lines = [e for e in logged_events(result.stderr) if e.get("event") == "endpoint"]
    assert [(e["host"], e["cloud"], e["allowed_by"]) for e in endpoint_lines] == [
        ("127.0.0.1", "AzureUSGovernment", "loopback")
    ]


# --- 13: a proxy never carries what goes to loopback


@dataclass
class RecordingProxy:
    """A "proxy" on loopback that records every connection and the bytes it was sent."""

    url: str
    seen: list[bytes] = field(default_factory=list)


@pytest.fixture
async def recording_proxy() -> AsyncIterator[RecordingProxy]:
    recorded: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        recorded.append(await reader.read(4096))
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(record, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield RecordingProxy(f"http://127.0.0.1:{port}", recorded)
    server.close()
    await server.wait_closed()


@pytest.fixture
def tls_emulator(tmp_path: Path) -> Iterator[tuple[EmulatorProcess, Path]]:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cafile, cert, key = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(cafile))
    for blob in issued.cert_chain_pems:
        blob.write_to_path(str(cert), append=True)
    issued.private_key_pem.write_to_path(str(key))
    tls = ["--tls-cert", str(cert), "--tls-key", str(key)]
    emulator = process.start(
        ["--accept-any", "--identity-header", IDENTITY_HEADER, *tls],
        log_path=tmp_path / "tls-emulator.log",
        cwd=ROOT,
        cafile=cafile,
    )
    yield emulator, cafile
    emulator.stop()


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_proxy_in_the_environment_never_sees_loopback_traffic(
    tmp_path: Path,
    start_emulator: StartEmulator,
    recording_proxy: RecordingProxy,
    request: pytest.FixtureRequest,
    scheme: str,
) -> None:
    identity = start(start_emulator, "--accept-any")
    if scheme == "https":
        arm, cafile = request.getfixturevalue("tls_emulator")
        extra = {"SSL_CERT_FILE": str(cafile)}
    else:
        arm, extra = identity, {}
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text(3))
    env = cli_env(arm, identity=identity) | extra
    env = {k: v for k, v in env.items() if k.lower() != "no_proxy"}
    env |= dict.fromkeys(PROXY_VARS, recording_proxy.url)
    report = tmp_path / "report.jsonl"
    done = await cli(env, "run", str(manifest), "--report", str(report), "--max-attempts", "1")
    assert recording_proxy.seen == []
    assert done.code == 0, done.stderr
    assert create_answers(arm) == {"200": 3}


# --- 14: a server that echoes the token, escaped, does not get it into any output

EchoServer = Callable[[], Awaitable[str]]


def json_escaped(text: str) -> str:
    """``text`` as a JSON string body would carry it with every character escaped."""
    return "".join(f"\\u{ord(c):04x}" for c in text)


async def echo(request: web.Request) -> web.Response:
    """ARM that answers 400 with the request's bearer token in it, escaped as JSON allows."""
    token = request.headers["Authorization"].removeprefix("Bearer ")
    if "/pipelines/JsonEcho/" in request.path:
        slashed = token.replace("/", "\\/")
        body = (
            '{"error": {"code": "BadRequest", '
            f'"message": "the header you sent was {json_escaped(token)}", '
            f'"target": "{slashed}", '
            f'"details": [{{"code": "Echo", "message": "{json_escaped("Bearer " + token)}"}}]}}}}'
        )
        return web.Response(status=400, text=body, content_type="application/json")
    entities = "".join(f"&#{ord(c)};" for c in token)
    body = f'<html><body>you sent {entities} and {{"t": "{json_escaped(token)}"</body></html>'
    return web.Response(status=400, text=body, content_type="text/html")


@pytest.fixture
async def echo_server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def test_a_token_echoed_escaped_in_errors_is_redacted_everywhere(
    tmp_path: Path, start_emulator: StartEmulator, echo_server: str
) -> None:
    identity = start(start_emulator, "--accept-any", "--expect-token", TOKEN)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        f"""version: 1
defaults: {{subscription: {SUB_A}, resource_group: rg-data, factory: factory-0}}
runs:
  - {{id: json-echo, pipeline: JsonEcho}}
  - {{id: html-echo, pipeline: HtmlEcho}}
"""
    )
    report = tmp_path / "report.jsonl"
    env = cli_env(identity) | {"BATCHRUN_ENDPOINT": echo_server}
    run = ["run", str(manifest), "--report", str(report), "--log-level", "debug"]
    done = await cli(env, *run, "--log-format", "json")
    summary = await cli(env, "summary", str(report), "--format", "json")
    markdown = await cli(env, "summary", str(report), "--format", "markdown")
    assert done.code == 1, done.stderr
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert {line["id"]: line["http_status"] for line in lines} == {
        "json-echo": 400,
        "html-echo": 400,
    }
    outputs = {
        "stdout": done.stdout,
        "stderr": done.stderr,
        "report": report.read_text(),
        "summary": summary.stdout + summary.stderr,
        "markdown": markdown.stdout + markdown.stderr,
    }
    forms = {
        TOKEN,
        TOKEN.replace("/", "\\/"),
        json_escaped(TOKEN),
        json.dumps(TOKEN),
        "e2e+secret",  # any recognisable piece of it
    }
    for where, text in outputs.items():
        for form in forms:
            assert form not in text, f"{form!r} leaked into {where}"
    by_id = {line["id"]: line["error"] for line in lines}
    assert by_id["json-echo"]["message"] == "the header you sent was [redacted]"
    assert by_id["json-echo"]["target"] == "[redacted]"
    assert by_id["json-echo"]["details"] == [{"code": "Echo", "message": "Bearer [redacted]"}]
    assert "you sent [redacted] and" in by_id["html-echo"]["message"]
    assert "[redacted]" in summary.stdout
    assert "[redacted]" in markdown.stdout
