import asyncio
import asyncio.sslproto
import datetime as dt
import json
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from batchrun import __version__
from batchrun.arm.answers import api_error
from batchrun.arm.client import (
    USER_AGENT,
    AdfClient,
    RateLimits,
    Timeouts,
    build_session,
    create_run_url,
    parse_retry_after,
)
from batchrun.arm.transport import TLS_READ_BUFFER_BYTES, proxy_for, transport_errors
from batchrun.errors import ApiError, TransportError, UsageError
from batchrun.model import RunSpec
from tests.helpers.tls import TlsFiles
from tests.helpers.tokens import StaticTokens

TOKEN = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tIn0.c2lnbmF0dXJl"
RUN_ID = "2f7fdb90-5df1-4b8e-ac2f-064cfa58202b"
REQUEST_ID = "5c2b442b-d360-43ec-9268-f923f88f31fd"
# The API page's sample request (examples/Pipelines_CreateRun.json)
SAMPLE = RunSpec(
    id="sample",
    subscription="12345678-1234-1234-1234-12345678abc",
    resource_group="exampleResourceGroup",
    factory="exampleFactoryName",
    pipeline="examplePipeline",
    parameters={"OutputBlobNameList": ["exampleoutput.csv"]},
)
SAMPLE_PATH = (
    "/subscriptions/12345678-1234-1234-1234-12345678abc/resourceGroups/exampleResourceGroup"
    "/providers/Microsoft.DataFactory/factories/exampleFactoryName"
    "/pipelines/examplePipeline/createRun?api-version=2018-06-01"
)
SAMPLE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "x-ms-ratelimit-remaining-subscription-writes": "1190",
    "x-ms-request-id": REQUEST_ID,
    "x-ms-correlation-request-id": REQUEST_ID,
}
FACTORY = {
    "subscription": SAMPLE.subscription,
    "resource_group": SAMPLE.resource_group,
    "factory": SAMPLE.factory,
}
PROXY_VARS = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"]


# --- a fake ARM on 127.0.0.1


@dataclass
class Seen:
    method: str
    raw_path: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeArm:
    endpoint: str = ""
    seen: list[Seen] = field(default_factory=list)
    replies: list[web.Response] = field(default_factory=list)

    def reply(
        self, status: int = 200, body: Any = None, *, text: str | None = None, **headers: str
    ) -> None:
        if text is None:
            text = json.dumps({"runId": RUN_ID} if body is None else body)
        hdrs = {name.replace("_", "-"): value for name, value in headers.items()}
        self.replies.append(web.Response(status=status, text=text, headers=hdrs))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            Seen(
                request.method,
                request.raw_path,
                request.path,
                dict(request.headers),
                await request.read(),
            )
        )
        if self.replies:
            return self.replies.pop(0)
        return web.json_response({"runId": RUN_ID}, headers=SAMPLE_HEADERS)


@asynccontextmanager
async def serve(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.fixture
async def arm() -> AsyncIterator[FakeArm]:
    fake = FakeArm()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    async with serve(app) as port:
        fake.endpoint = f"http://127.0.0.1:{port}"
        yield fake


def make_client(session: aiohttp.ClientSession, endpoint: str, read_s: float = 5.0) -> AdfClient:
    return AdfClient(
        session=session,
        endpoint=endpoint,
        tokens=StaticTokens(TOKEN),
        user_agent=USER_AGENT,
        timeouts=Timeouts(connect_s=5.0, read_s=read_s),
    )


@pytest.fixture
def client(session: aiohttp.ClientSession, arm: FakeArm) -> AdfClient:
    return make_client(session, arm.endpoint)


async def create(client: AdfClient, spec: RunSpec = SAMPLE) -> Any:
    return await client.create_run(spec, client_request_id="req-1")


async def create_error(client: AdfClient, spec: RunSpec = SAMPLE) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await create(client, spec)
    return caught.value


# --- createRun: URL, body, headers


def test_create_run_url_is_the_api_sample() -> None:
    assert create_run_url("https://management.azure.com/", SAMPLE) == (
        f"https://management.azure.com{SAMPLE_PATH}"
    )


async def test_create_run_sends_the_api_sample_and_reads_its_response(
    client: AdfClient, arm: FakeArm
) -> None:
    response = await create(client)
    [seen] = arm.seen
    assert (seen.method, seen.raw_path) == ("POST", SAMPLE_PATH)
    assert json.loads(seen.body) == {"OutputBlobNameList": ["exampleoutput.csv"]}
    assert response.run_id == RUN_ID
    assert response.http_status == 200
    assert response.request_id == REQUEST_ID
    assert response.correlation_id == REQUEST_ID
    assert response.limits == RateLimits(writes=1190)
    assert response.limits.remaining_writes == 1190


async def test_create_run_sends_the_expected_headers(client: AdfClient, arm: FakeArm) -> None:
    await client.create_run(SAMPLE, client_request_id="kept-across-attempts")
    headers = arm.seen[0].headers
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["User-Agent"] == f"batchrun/{__version__}"
    assert headers["x-ms-client-request-id"] == "kept-across-attempts"
    assert headers["Accept"] == "application/json"
    assert headers["Content-Type"] == "application/json"


async def test_no_parameters_send_an_empty_object(client: AdfClient, arm: FakeArm) -> None:
    await create(client, replace(SAMPLE, parameters={}))
    assert arm.seen[0].body == b"{}"


async def test_dates_from_yaml_are_sent_as_iso_strings(client: AdfClient, arm: FakeArm) -> None:
    await create(client, replace(SAMPLE, parameters={"day": dt.date(2024, 1, 31)}))
    assert json.loads(arm.seen[0].body) == {"day": "2024-01-31"}


R = "16ac5348-ff82-4f95-a80d-638c1d47b721"


@pytest.mark.parametrize(
    ("recovery", "query"),
    [
        ({}, ""),
        ({"reference_run_id": R}, f"&referencePipelineRunId={R}"),
        (
            {"reference_run_id": R, "is_recovery": True},
            f"&referencePipelineRunId={R}&isRecovery=true",
        ),
        (
            {"reference_run_id": R, "is_recovery": False},
            f"&referencePipelineRunId={R}&isRecovery=false",
        ),
        (
            {"reference_run_id": R, "is_recovery": True, "start_from_failure": True},
            f"&referencePipelineRunId={R}&isRecovery=true&startFromFailure=true",
        ),
        (
            {"reference_run_id": R, "is_recovery": True, "start_activity_name": "Copy EU/Sales&Co"},
            f"&referencePipelineRunId={R}&isRecovery=true&startActivityName=Copy%20EU%2FSales%26Co",
        ),
    ],
)
async def test_recovery_parameters_are_sent_only_when_set(
    client: AdfClient, arm: FakeArm, recovery: dict[str, Any], query: str
) -> None:
    spec = replace(SAMPLE, **recovery)
    assert client.create_run_url(spec) == f"{arm.endpoint}{SAMPLE_PATH}{query}"
    await create(client, spec)
    assert arm.seen[0].raw_path == f"{SAMPLE_PATH}{query}"


@pytest.mark.parametrize(
    ("pipeline", "encoded"),
    [
        ("Load Sales", "Load%20Sales"),
        ("copy (daily) $1", "copy%20%28daily%29%20%241"),
        ("données_été", "donn%C3%A9es_%C3%A9t%C3%A9"),
        ("a;b=c,d'e!f@g", "a%3Bb%3Dc%2Cd%27e%21f%40g"),
        ("already%20encoded?", "already%2520encoded%3F"),  # not a valid name; still sent verbatim
    ],
)
async def test_odd_names_are_percent_encoded_once(
    client: AdfClient, arm: FakeArm, pipeline: str, encoded: str
) -> None:
    spec = replace(SAMPLE, pipeline=pipeline, resource_group="rg (test)")
    url = client.create_run_url(spec)
    assert "/resourceGroups/rg%20%28test%29/" in url
    assert f"/pipelines/{encoded}/createRun?" in url
    await create(client, spec)
    seen = arm.seen[0]
    assert f"/pipelines/{encoded}/createRun" in seen.raw_path
    assert seen.path.endswith(f"/pipelines/{pipeline}/createRun")  # decodes back to the name


# --- createRun: answers that are not a run


@pytest.mark.parametrize(
    ("body", "text"),
    [({}, None), ({"runId": ""}, None), ({"runId": 42}, None), (None, "not json"), (None, "[]")],
)
async def test_200_without_a_run_id_is_an_ambiguous_error(
    client: AdfClient, arm: FakeArm, body: Any, text: str | None
) -> None:
    # ADF took the request: the run may exist, so it is looked for before any re-post
    arm.reply(200, body if body is not None else None, text=text, x_ms_request_id="r-1")
    error = await create_error(client)
    assert (error.status, error.code, error.transient, error.sent) == (
        200,
        "InvalidResponse",
        True,
        True,
    )
    assert "may have been created" in error.message
    assert error.request_id == "r-1"


@pytest.mark.parametrize(
    ("status", "transient", "sent"),
    [
        (400, False, True),
        (401, False, False),
        (403, False, False),
        (404, False, True),
        (409, False, True),
        (408, True, True),
        (429, True, False),
        (500, True, True),
        (502, True, True),
        (503, True, True),
        (504, True, True),
        (501, False, True),
        (302, False, True),  # redirects are not followed
    ],
)
async def test_status_decides_transient_and_sent(
    client: AdfClient, arm: FakeArm, status: int, transient: bool, sent: bool
) -> None:
    arm.reply(status, {"error": {"code": "Code", "message": "Message"}}, Location="/elsewhere")
    error = await create_error(client)
    assert (error.status, error.transient, error.sent) == (status, transient, sent)
    assert not isinstance(error, TransportError)
    assert len(arm.seen) == 1


async def test_throttled_answer_carries_retry_after_ids_and_budget(
    client: AdfClient, arm: FakeArm
) -> None:
    arm.reply(
        429,
        {
            "error": {
                "code": "SubscriptionRequestsThrottled",
                "message": "Number of 'write' requests",
            }
        },
        Retry_After="17",
        x_ms_request_id="req-429",
        x_ms_correlation_request_id="corr-429",
        x_ms_ratelimit_remaining_subscription_writes="0",
    )
    error = await create_error(client)
    assert error.code == "SubscriptionRequestsThrottled"
    assert error.retry_after == 17.0
    assert (error.request_id, error.correlation_id) == ("req-429", "corr-429")
    assert error.remaining_writes == 0


async def test_html_502_from_a_gateway_is_a_clear_error(client: AdfClient, arm: FakeArm) -> None:
    arm.reply(
        502,
        text="<html><head><title>502 Bad Gateway</title><style>b{}</style></head>"
        "<body><h1>502 Bad Gateway</h1><hr>nginx &amp; friends</body></html>",
        Content_Type="text/html",
    )
    error = await create_error(client)
    assert error.code == "HttpError502"
    assert error.message == "Bad Gateway: 502 Bad Gateway 502 Bad Gateway nginx & friends"
    assert str(error) == f"HTTP 502 HttpError502: {error.message}"
    assert error.transient


async def test_the_bearer_token_never_appears_in_errors(client: AdfClient, arm: FakeArm) -> None:
    echoed = {"error": {"code": "BadRequest", "message": f"header was Bearer {TOKEN}"}}
    arm.reply(400, {**echoed, "details": [TOKEN]})
    error = await create_error(client)
    shown = f"{error} {error!r} {error.message} {error.details} {client!r}"
    assert TOKEN not in shown
    assert "Bearer [redacted]" in error.message


OPAQUE = "opaque/token+not-a-jwt-0123456789"
SLASHED = OPAQUE.replace("/", "\\/")  # as JSON may write it


class OpaqueTokens:
    async def get_token(self) -> str:
        return OPAQUE


def escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def opaque_client(session: aiohttp.ClientSession, arm: FakeArm) -> AdfClient:
    return AdfClient(
        session=session, endpoint=arm.endpoint, tokens=OpaqueTokens(), timeouts=Timeouts()
    )


async def test_an_escaped_echo_of_the_token_is_redacted_in_every_field(
    session: aiohttp.ClientSession, arm: FakeArm
) -> None:
    slashed, unicode = SLASHED, escaped(OPAQUE)
    arm.reply(
        400,
        text=f'{{"error": {{"code": "C{unicode}", "message": "got {unicode}", '
        f'"target": "{slashed}", "details": [{{"message": "{slashed}", "{unicode}": 1}}]}}}}',
        x_ms_request_id=OPAQUE,
    )
    error = await create_error(opaque_client(session, arm))
    assert (error.code, error.message) == ("C[redacted]", "got [redacted]")
    assert error.target == "[redacted]"
    assert error.details == [{"message": "[redacted]", "[redacted]": 1}]
    assert error.request_id == "[redacted]"
    assert OPAQUE not in f"{error} {error!r}"


ENTITIES = "".join(f"&#{ord(c)};" for c in OPAQUE)


@pytest.mark.parametrize(
    "body",
    [
        f"<p>you sent {ENTITIES}</p>",
        f"<p>you sent {OPAQUE.replace('/', '&#x2F;')}</p>",
        f'{{"cut off": "{escaped(OPAQUE)}',
        f'{{"not a cloud error": "{SLASHED}"}}',
        "x" * 190 + OPAQUE,  # cut in half by the snippet's length limit
    ],
)
async def test_an_echo_of_the_token_in_a_non_cloud_error_body_is_redacted(
    session: aiohttp.ClientSession, arm: FakeArm, body: str
) -> None:
    arm.reply(400, text=body, Content_Type="text/html")
    error = await create_error(opaque_client(session, arm))
    assert "[redacted]" in error.message
    assert OPAQUE[:12] not in error.message


async def test_a_2xx_answer_has_the_known_token_redacted_but_jwt_shapes_kept(
    session: aiohttp.ClientSession, arm: FakeArm
) -> None:
    run = {"runId": "r", "parameters": {"echo": escaped(OPAQUE), "jwt": TOKEN}}
    text = json.dumps({"value": [run]}).replace("\\\\u", "\\u")
    arm.reply(200, text=text)
    page = await opaque_client(session, arm).query_pipeline_runs(**FACTORY, filter_parameters={})
    assert page.value[0]["parameters"] == {"echo": "[redacted]", "jwt": TOKEN}


def test_api_error_redacts_token_shapes_without_a_redactor() -> None:
    text = json.dumps({"error": {"code": "X", "message": f"token {TOKEN}", "target": TOKEN}})
    error = api_error(400, "Bad Request", {}, text.replace("/", "\\/"))
    assert (error.message, error.target) == ("token [redacted]", "[redacted]")


# --- CloudError parsing


@pytest.mark.parametrize(
    ("text", "code", "message", "target", "details"),
    [
        (
            '{"error": {"code": "PipelineNotFound", "message": "Pipeline not found",'
            ' "target": "examplePipeline", "details": [{"code": "Inner", "message": "m"}]}}',
            "PipelineNotFound",
            "Pipeline not found",
            "examplePipeline",
            [{"code": "Inner", "message": "m"}],
        ),
        ('{"code": "BadRequest", "message": "Top level"}', "BadRequest", "Top level", None, []),
        (
            '{"Code": "Capitalised", "Message": "From a gateway"}',
            "Capitalised",
            "From a gateway",
            None,
            [],
        ),
        (
            '{"error": "invalid_token", "error_description": "The token is expired"}',
            "invalid_token",
            "The token is expired",
            None,
            [],
        ),
        (
            '{"error": {"code": "Lonely", "details": {"one": 1}}}',
            "Lonely",
            None,
            None,
            [{"one": 1}],
        ),
        ("", "HttpError400", "Bad Request (empty body)", None, []),
        ("  \n ", "HttpError400", "Bad Request (empty body)", None, []),
        ('"just a string"', "HttpError400", 'Bad Request: "just a string"', None, []),
        ("<p>Nope</p>", "HttpError400", "Bad Request: Nope", None, []),
    ],
)
def test_cloud_error_parsing(
    text: str, code: str, message: str | None, target: str | None, details: list[Any]
) -> None:
    error = api_error(400, "Bad Request", {}, text)
    assert error.code == code
    if message is not None:
        assert error.message == message
    assert (error.target, error.details) == (target, details)


def test_long_non_json_bodies_are_cut_to_about_200_characters() -> None:
    error = api_error(503, None, {}, "<body>" + "x" * 5000 + "</body>")
    assert error.message.startswith("Service Unavailable: xxx")
    assert len(error.message) < 240


def test_error_header_names_are_case_insensitive() -> None:
    error = api_error(500, "Oops", {"X-MS-REQUEST-ID": "abc", "retry-after": "3"}, "")
    assert (error.request_id, error.retry_after) == ("abc", 3.0)


# --- queryPipelineRuns and pipelineruns/{runId}


async def test_query_pipeline_runs(client: AdfClient, arm: FakeArm) -> None:
    arm.reply(
        200,
        {"value": [{"runId": RUN_ID, "status": "Succeeded"}], "continuationToken": "next-page"},
        x_ms_ratelimit_remaining_subscription_reads="14989",
        x_ms_request_id="q-1",
    )
    filters = {
        "lastUpdatedAfter": dt.datetime(2018, 6, 16, 0, 36, 44, tzinfo=dt.UTC),
        "lastUpdatedBefore": "2018-06-16T00:49:48.3686473Z",
        "filters": [
            {"operand": "PipelineName", "operator": "Equals", "values": ["examplePipeline"]}
        ],
    }
    page = await client.query_pipeline_runs(**FACTORY, filter_parameters=filters)
    seen = arm.seen[0]
    assert seen.method == "POST"
    assert seen.raw_path == SAMPLE_PATH.split("/pipelines/")[0] + (
        "/queryPipelineRuns?api-version=2018-06-01"
    )
    assert json.loads(seen.body)["lastUpdatedAfter"] == "2018-06-16T00:36:44+00:00"
    assert seen.headers["x-ms-client-request-id"]  # one is made up when none is given
    assert page.value == [{"runId": RUN_ID, "status": "Succeeded"}]
    assert page.continuation_token == "next-page"
    assert page.limits == RateLimits(reads=14989)
    assert page.request_id == "q-1"


async def test_query_without_value_or_token_is_an_empty_last_page(
    client: AdfClient, arm: FakeArm
) -> None:
    arm.reply(200, {"continuationToken": None})
    page = await client.query_pipeline_runs(**FACTORY, filter_parameters={}, client_request_id="c")
    assert (page.value, page.continuation_token) == ([], None)
    assert arm.seen[0].headers["x-ms-client-request-id"] == "c"


async def test_get_pipeline_run(client: AdfClient, arm: FakeArm) -> None:
    arm.reply(200, {"runId": RUN_ID, "status": "InProgress"})
    run = await client.get_pipeline_run(**FACTORY, run_id=RUN_ID)
    assert run == {"runId": RUN_ID, "status": "InProgress"}
    seen = arm.seen[0]
    assert seen.method == "GET"
    assert seen.raw_path.endswith(
        f"/factories/exampleFactoryName/pipelineruns/{RUN_ID}?api-version=2018-06-01"
    )
    assert seen.body == b""
    assert "Content-Type" not in seen.headers


async def test_get_unknown_pipeline_run_is_a_404(client: AdfClient, arm: FakeArm) -> None:
    arm.reply(404, {"error": {"code": "PipelineRunNotFound", "message": "no such run"}})
    with pytest.raises(ApiError) as caught:
        await client.get_pipeline_run(**FACTORY, run_id="nope")
    assert (caught.value.status, caught.value.code) == (404, "PipelineRunNotFound")


# --- RateLimits and Retry-After

W, G, RD = (
    "x-ms-ratelimit-remaining-subscription-writes",
    "x-ms-ratelimit-remaining-subscription-global-writes",
    "x-ms-ratelimit-remaining-subscription-reads",
)


@pytest.mark.parametrize(
    ("headers", "limits", "remaining"),
    [
        ({}, RateLimits(), None),
        ({W: "1190"}, RateLimits(writes=1190), 1190),
        ({W: "1190", G: "17000"}, RateLimits(writes=1190, global_writes=17000), 1190),
        ({W: "50", G: "10"}, RateLimits(writes=50, global_writes=10), 10),
        ({G: "2999"}, RateLimits(global_writes=2999), 2999),
        ({W: "0"}, RateLimits(writes=0), 0),
        ({W: "lots", G: "-1", RD: ""}, RateLimits(), None),
        ({W: " 12 ", RD: "1.5"}, RateLimits(writes=12), 12),
        ({W.upper(): "7", RD: "14989"}, RateLimits(writes=7, reads=14989), 7),
    ],
)
def test_rate_limits_from_headers(
    headers: dict[str, str], limits: RateLimits, remaining: int | None
) -> None:
    parsed = RateLimits.from_headers(headers)
    assert parsed == limits
    assert parsed.remaining_writes == remaining


NOW = dt.datetime(2018, 6, 16, 0, 37, 48, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, None),
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": " 7 "}, 7.0),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": "Sat, 16 Jun 2018 00:38:18 GMT"}, 30.0),
        ({"Retry-After": "Sat, 16 Jun 2018 00:38:18 -0000"}, 30.0),
        ({"Retry-After": "Sat, 16 Jun 2018 00:30:00 GMT"}, 0.0),  # already past: go now
        ({"x-ms-retry-after-ms": "2500", "Retry-After": "7"}, 2.5),
        ({"X-MS-Retry-After-MS": "250"}, 0.25),
        ({"retry-after-ms": "100", "x-ms-retry-after-ms": "2500"}, 0.1),
        ({"x-ms-retry-after-ms": "soon", "Retry-After": "7"}, 7.0),
        ({"Retry-After": "-5"}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": ""}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "1e3"}, None),
        ({"x-ms-retry-after-ms": "-100"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == seconds


# --- transport failures

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter, asyncio.Event], Awaitable[None]]


@asynccontextmanager
async def misbehaving_server(behaviour: Behaviour) -> AsyncIterator[str]:
    """A raw TCP server that reads a request head and then does ``behaviour``."""
    release = asyncio.Event()
    handlers: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            await behaviour(reader, writer, release)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        release.set()
        server.close()
        await server.wait_closed()
        await asyncio.gather(*handlers, return_exceptions=True)


async def hang_up(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: asyncio.Event
) -> None:
    return


async def stall(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, release: asyncio.Event
) -> None:
    await release.wait()


async def cut_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: asyncio.Event
) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'{"runId": "2f7f'
    )
    await writer.drain()


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [(hang_up, "ServerDisconnected"), (stall, "Timeout"), (cut_body, "ResponseIncomplete")],
)
async def test_lost_answers_are_transient_and_maybe_sent(
    session: aiohttp.ClientSession, behaviour: Behaviour, code: str
) -> None:
    async with misbehaving_server(behaviour) as endpoint:
        with pytest.raises(TransportError) as caught:
            await create(make_client(session, endpoint, read_s=0.2))
    error = caught.value
    assert (error.code, error.status, error.transient, error.sent) == (code, None, True, True)
    assert isinstance(error.__cause__, aiohttp.ClientError)
    assert "may have acted" in error.message
    assert TOKEN not in f"{error} {error!r}"


async def test_refused_connection_is_transient_and_not_sent(
    session: aiohttp.ClientSession,
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportError) as caught:
        await create(make_client(session, f"http://127.0.0.1:{port}"))
    error = caught.value
    assert (error.code, error.transient, error.sent) == ("ConnectionError", True, False)
    assert f"127.0.0.1:{port}" in error.message


def _os_error() -> OSError:
    return OSError(111, "Connection refused")


@pytest.mark.parametrize(
    ("raised", "code", "transient", "sent"),
    [
        (aiohttp.ConnectionTimeoutError("connect"), "ConnectTimeout", True, False),
        (aiohttp.SocketTimeoutError("read"), "Timeout", True, True),
        (aiohttp.ServerTimeoutError("read"), "Timeout", True, True),
        (TimeoutError(), "Timeout", True, True),
        (aiohttp.ServerDisconnectedError(), "ServerDisconnected", True, True),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), "ConnectionLost", True, True),
        (aiohttp.ClientConnectionResetError("reset"), "ConnectionLost", True, True),
        (aiohttp.ClientPayloadError("truncated"), "ResponseIncomplete", True, True),
        (aiohttp.InvalidURL("http://[bad"), "InvalidUrl", False, False),
        (aiohttp.ClientError("something new"), "HttpClientError", False, True),
    ],
)
def test_transport_error_table(
    raised: BaseException, code: str, transient: bool, sent: bool
) -> None:
    with pytest.raises(TransportError) as caught, transport_errors("arm.example", Timeouts()):
        raise raised
    error = caught.value
    assert (error.code, error.transient, error.sent) == (code, transient, sent)
    assert error.__cause__ is raised


def test_transport_errors_leave_other_exceptions_alone() -> None:
    with pytest.raises(KeyError), transport_errors("arm.example", Timeouts()):
        raise KeyError("bug")


# --- the session: proxies, CA bundle, TLS


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [*PROXY_VARS, "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def test_build_session_limits_connections_and_reads_no_environment_per_request(
    clean_env: pytest.MonkeyPatch,
) -> None:
    async with build_session(timeouts=Timeouts(connect_s=3, read_s=7), limit=12) as built:
        assert built.trust_env is False
        assert isinstance(built.connector, aiohttp.TCPConnector)
        assert built.connector.limit == 12
        assert (built.timeout.sock_connect, built.timeout.sock_read) == (3, 7)
        assert built.timeout.total is None


def test_build_session_rejects_a_zero_limit() -> None:
    with pytest.raises(ValueError, match="limit"):
        build_session(timeouts=Timeouts(), limit=0)


@pytest.mark.parametrize("var", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"])
async def test_missing_ca_file_is_a_usage_error_naming_the_variable(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, var: str
) -> None:
    clean_env.setenv(var, str(tmp_path / "missing.pem"))
    with pytest.raises(UsageError, match=f"{var}=.*missing.pem"):
        build_session(timeouts=Timeouts(), limit=1)


async def test_garbage_ca_file_is_a_usage_error(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundle = tmp_path / "garbage.pem"
    bundle.write_text("not a certificate")
    clean_env.setenv("SSL_CERT_FILE", str(bundle))
    with pytest.raises(UsageError, match="SSL_CERT_FILE"):
        build_session(timeouts=Timeouts(), limit=1)


@asynccontextmanager
async def tls_arm(tls_files: TlsFiles) -> AsyncIterator[str]:
    fake = FakeArm()
    fake.reply(200, {"runId": RUN_ID, "status": "Succeeded"})
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    async with serve(app, ssl_context=tls_files.server_context()) as port:
        yield f"https://127.0.0.1:{port}"


async def test_ca_bundle_from_ssl_cert_file_is_trusted(
    clean_env: pytest.MonkeyPatch, tls_files: TlsFiles
) -> None:
    clean_env.setenv("SSL_CERT_FILE", str(tls_files.ca))
    async with tls_arm(tls_files) as endpoint, build_session(timeouts=Timeouts(), limit=2) as built:
        run = await make_client(built, endpoint).get_pipeline_run(**FACTORY, run_id=RUN_ID)
    assert run["status"] == "Succeeded"


async def test_an_answer_larger_than_the_small_tls_read_buffer_arrives_whole(
    clean_env: pytest.MonkeyPatch, tls_files: TlsFiles
) -> None:
    # each TLS connection reads through TLS_READ_BUFFER_BYTES, not asyncio's 256 KiB
    clean_env.setenv("SSL_CERT_FILE", str(tls_files.ca))
    message = "x" * (40 * TLS_READ_BUFFER_BYTES)
    fake = FakeArm()
    fake.reply(200, {"runId": RUN_ID, "status": "Failed", "message": message})
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    async with (
        serve(app, ssl_context=tls_files.server_context()) as port,
        build_session(timeouts=Timeouts(), limit=2) as built,
    ):
        endpoint = f"https://127.0.0.1:{port}"
        run = await make_client(built, endpoint).get_pipeline_run(**FACTORY, run_id=RUN_ID)
    assert asyncio.sslproto.SSLProtocol.max_size == TLS_READ_BUFFER_BYTES
    assert run["message"] == message


async def test_untrusted_certificate_is_a_permanent_unsent_error_with_a_hint(
    clean_env: pytest.MonkeyPatch, tls_files: TlsFiles
) -> None:
    async with tls_arm(tls_files) as endpoint, build_session(timeouts=Timeouts(), limit=2) as built:
        with pytest.raises(TransportError) as caught:
            await make_client(built, endpoint).get_pipeline_run(**FACTORY, run_id=RUN_ID)
    error = caught.value
    assert (error.code, error.transient, error.sent) == ("TlsCertificateError", False, False)
    assert "SSL_CERT_FILE" in error.message
    assert re.search(r"127\.0\.0\.1:\d+", error.message)


def test_proxy_comes_from_the_environment_once(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTPS_PROXY", "http://user:pw@proxy.corp:3128")
    clean_env.setenv("NO_PROXY", "internal.example")
    proxy = proxy_for("https://management.azure.com")
    assert proxy.url is not None
    assert (proxy.url.host, proxy.url.port) == ("proxy.corp", 3128)
    assert proxy.auth is not None
    assert proxy.auth.login == "user"
    assert "pw" not in repr(proxy)
    assert proxy_for("https://internal.example").url is None


def test_no_proxy_variables_means_a_direct_connection(clean_env: pytest.MonkeyPatch) -> None:
    assert proxy_for("https://management.azure.com").url is None


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:8080", "https://127.0.0.1:8443", "http://[::1]", "http://localhost"],
)
def test_loopback_is_never_proxied_whatever_no_proxy_says(
    clean_env: pytest.MonkeyPatch, endpoint: str
) -> None:
    for name in PROXY_VARS:
        clean_env.setenv(name, "http://proxy.corp:3128")
    clean_env.setenv("NO_PROXY", "other.example")
    assert proxy_for(endpoint).url is None


def test_an_http_endpoint_a_proxy_would_carry_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTP_PROXY", "http://proxy.corp:3128")
    with pytest.raises(UsageError, match=r"'http://adf\.invalid' uses http:// and HTTP_PROXY"):
        proxy_for("http://adf.invalid")
    clean_env.setenv("NO_PROXY", "adf.invalid")
    assert proxy_for("http://adf.invalid").url is None


async def test_https_requests_tunnel_through_the_proxy_which_never_sees_the_token(
    clean_env: pytest.MonkeyPatch,
) -> None:
    seen: list[bytes] = []

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        clean_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
        async with build_session(timeouts=Timeouts(), limit=2) as session:
            client = AdfClient(
                session=session,
                endpoint="https://adf.invalid",
                tokens=StaticTokens(TOKEN),
                timeouts=Timeouts(),
            )
            with pytest.raises(TransportError):
                await client.create_run(SAMPLE, client_request_id="r")
    finally:
        server.close()
        await server.wait_closed()
    assert len(seen) == 1
    assert seen[0].startswith(b"CONNECT adf.invalid:443 HTTP/1.1\r\n")
    assert TOKEN.encode() not in seen[0]
