"""``AdfClient``: the Data Factory calls batchrun makes, over the process's one aiohttp session.

Every answer other than 2xx becomes an :class:`~batchrun.errors.ApiError`, classified by
:mod:`batchrun.arm.answers` (transient? sent? ADF's queue? another tenant?). Failures without a
response are :class:`~batchrun.errors.TransportError` (see :mod:`batchrun.arm.transport`). A 2xx
whose body is not what the API promises is an ``ApiError`` with code ``InvalidResponse``:
permanent for reads; for a createRun it is ambiguous (transient and sent: the run may exist, so
it is looked for before any re-post).

Whatever a server sends back may echo the request, bearer token included, and escaped
(``\\/``, ``\\u0065``, ``&#101;``) so that a plain search misses it. Every token sent is
registered with the client's :class:`~batchrun.log.Redactor`, and every text from a server is
scrubbed after it is decoded and before it becomes an error, a report line or a log.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import quote, urlencode, urlsplit

from yarl import URL

from batchrun import __version__
from batchrun.arm.answers import api_error, readable_snippet, scrubbed_header
from batchrun.arm.ratelimit import RateLimits, parse_retry_after, server_date
from batchrun.arm.timeouts import Timeouts
from batchrun.arm.transport import (
    build_session,
    client_timeout,
    proxy_for,
    transport_errors,
)
from batchrun.errors import ApiError
from batchrun.log import Redactor

if TYPE_CHECKING:
    from collections.abc import Mapping

    import aiohttp

    from batchrun.arm.auth import TokenProvider
    from batchrun.model import RunSpec

__all__ = [
    "API_VERSION",
    "USER_AGENT",
    "AdfClient",
    "CreateRunResponse",
    "PipelineResponse",
    "QueryResponse",
    "RateLimits",
    "Timeouts",
    "build_session",
    "create_run_url",
    "parse_retry_after",
]

API_VERSION = "2018-06-01"
USER_AGENT = f"batchrun/{__version__}"


@dataclass(frozen=True, slots=True)
class CreateRunResponse:
    run_id: str
    http_status: int
    request_id: str | None
    correlation_id: str | None
    limits: RateLimits


@dataclass(frozen=True, slots=True)
class QueryResponse:
    value: list[dict[str, Any]]
    continuation_token: str | None
    limits: RateLimits
    request_id: str | None
    # the server's clock when it answered (the Date header): reconciliation reads runStart by it
    server_date: datetime | None = None


@dataclass(frozen=True, slots=True)
class PipelineResponse:
    """A pipeline's definition as ADF holds it (the spec's PipelineResource)."""

    resource: dict[str, Any]
    limits: RateLimits
    request_id: str | None


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    headers: Mapping[str, str]
    text: str  # the body as received: scrub what comes out of it
    redactor: Redactor

    @property
    def request_id(self) -> str | None:
        return scrubbed_header(self.headers, "x-ms-request-id", self.redactor)

    def json_object(self, what: str) -> dict[str, Any]:
        try:
            data = json.loads(self.text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise self.invalid(f"{what} answered {self.status} with a body that is not JSON")
        # known tokens only: run parameters are compared with the manifest's, whatever they hold
        scrubbed: dict[str, Any] = self.redactor.value(data, shapes=False)
        return scrubbed

    def invalid(self, message: str, *, ambiguous: bool = False) -> ApiError:
        """``InvalidResponse``; ``ambiguous`` for a write the service may have carried out."""
        maybe = "; the run may have been created" if ambiguous else ""
        body = readable_snippet(self.text, self.redactor) or "(empty body)"
        return ApiError(
            status=self.status,
            code="InvalidResponse",
            message=f"{message}{maybe}: {body}",
            request_id=self.request_id,
            correlation_id=scrubbed_header(
                self.headers, "x-ms-correlation-request-id", self.redactor
            ),
            transient=ambiguous,
            sent=True,
        )


class RunReader(Protocol):
    """The reads of pipeline runs (:class:`~batchrun.arm.client.AdfClient` is one)."""

    async def query_pipeline_runs(
        self,
        *,
        subscription: str,
        resource_group: str,
        factory: str,
        filter_parameters: Mapping[str, Any],
        client_request_id: str | None = None,
    ) -> QueryResponse: ...

    async def get_pipeline_run(
        self, *, subscription: str, resource_group: str, factory: str, run_id: str
    ) -> dict[str, Any]: ...


class AdfClient:
    """createRun, queryPipelineRuns and pipelineruns/{runId} for one management endpoint."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        endpoint: str,
        tokens: TokenProvider,
        user_agent: str = USER_AGENT,
        timeouts: Timeouts,
        redactor: Redactor | None = None,
    ) -> None:
        self._session = session
        self._redactor = redactor or Redactor()
        self._endpoint = endpoint.rstrip("/")
        self._host = urlsplit(self._endpoint).netloc
        self._tokens = tokens
        self._user_agent = user_agent
        self._timeouts = timeouts
        self._client_timeout = client_timeout(timeouts)
        self._proxy = proxy_for(self._endpoint)

    def __repr__(self) -> str:
        return f"AdfClient(endpoint={self._endpoint!r})"

    def _factory_url(self, subscription: str, resource_group: str, factory: str) -> str:
        return _factory_url(self._endpoint, subscription, resource_group, factory)

    def create_run_url(self, spec: RunSpec) -> str:
        """The exact, already percent-encoded URL ``create_run`` posts to."""
        return create_run_url(self._endpoint, spec)

    async def create_run(self, spec: RunSpec, *, client_request_id: str) -> CreateRunResponse:
        """Trigger one pipeline run. Raises ApiError (TransportError when no answer came)."""
        reply = await self._send(
            "POST", self.create_run_url(spec), spec.parameters or {}, client_request_id
        )
        # a 2xx means ADF took the request: whatever the body, the run may exist
        try:
            data = json.loads(reply.text)
        except ValueError:
            data = None
        run_id = data.get("runId") if isinstance(data, dict) else None
        if not isinstance(run_id, str) or not run_id:
            raise reply.invalid("createRun answered without a runId", ambiguous=True)
        run_id = self._redactor.text(run_id)
        return CreateRunResponse(
            run_id=run_id,
            http_status=reply.status,
            request_id=reply.request_id,
            correlation_id=scrubbed_header(
                reply.headers, "x-ms-correlation-request-id", self._redactor
            ),
            limits=RateLimits.from_headers(reply.headers),
        )

    async def query_pipeline_runs(
        self,
        *,
        subscription: str,
        resource_group: str,
        factory: str,
        filter_parameters: Mapping[str, Any],
        client_request_id: str | None = None,
    ) -> QueryResponse:
        """One page of queryPipelineRuns; pass ``continuationToken`` in ``filter_parameters``
        for the next. ``datetime`` values are sent as ISO 8601."""
        url = f"{self._factory_url(subscription, resource_group, factory)}/queryPipelineRuns"
        reply = await self._send(
            "POST", f"{url}?api-version={API_VERSION}", dict(filter_parameters), client_request_id
        )
        return _page(reply, "queryPipelineRuns")

    async def get_pipeline_run(
        self, *, subscription: str, resource_group: str, factory: str, run_id: str
    ) -> dict[str, Any]:
        """The PipelineRun object for ``run_id`` (a 404 is an ApiError)."""
        url = self._factory_url(subscription, resource_group, factory)
        url = f"{url}/pipelineruns/{_seg(run_id)}?api-version={API_VERSION}"
        reply = await self._send("GET", url, None, None)
        return reply.json_object("pipelineruns")

    async def get_pipeline(
        self, *, subscription: str, resource_group: str, factory: str, pipeline: str
    ) -> PipelineResponse:
        """The PipelineResource of ``pipeline`` (its parameters, concurrency); a 404 is an
        ApiError."""
        url = self._factory_url(subscription, resource_group, factory)
        url = f"{url}/pipelines/{_seg(pipeline)}?api-version={API_VERSION}"
        reply = await self._send("GET", url, None, None)
        return PipelineResponse(
            resource=reply.json_object("pipelines"),
            limits=RateLimits.from_headers(reply.headers),
            request_id=reply.request_id,
        )

    async def query_activity_runs(
        self,
        *,
        subscription: str,
        resource_group: str,
        factory: str,
        run_id: str,
        filter_parameters: Mapping[str, Any],
    ) -> QueryResponse:
        """One page of a run's activity runs (queryActivityruns); paged like queryPipelineRuns."""
        url = self._factory_url(subscription, resource_group, factory)
        url = f"{url}/pipelineruns/{_seg(run_id)}/queryActivityruns?api-version={API_VERSION}"
        reply = await self._send("POST", url, dict(filter_parameters), None)
        return _page(reply, "queryActivityruns")

    async def cancel_pipeline_run(
        self,
        *,
        subscription: str,
        resource_group: str,
        factory: str,
        run_id: str,
        is_recursive: bool = False,
    ) -> RateLimits:
        """Ask ADF to cancel a run (it moves through Canceling to Cancelled); the write budget
        left is returned. A finished run is a 400 ApiError (``PipelineRunNotRunning`` or alike)."""
        url = self._factory_url(subscription, resource_group, factory)
        recursive = "true" if is_recursive else "false"
        url = (
            f"{url}/pipelineruns/{_seg(run_id)}/cancel"
            f"?isRecursive={recursive}&api-version={API_VERSION}"
        )
        reply = await self._send("POST", url, None, None)
        return RateLimits.from_headers(reply.headers)

    async def _send(
        self, method: str, url: str, body: Any, client_request_id: str | None
    ) -> _Reply:
        token = await self._tokens.get_token()
        self._redactor.register(token)
        headers = {
            "Authorization": f"Bearer {token}",
            "User-Agent": self._user_agent,
            "Accept": "application/json",
            "x-ms-client-request-id": client_request_id or str(uuid.uuid4()),
        }
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = _BODY.encode(body).encode()
        with transport_errors(self._host, self._timeouts):
            async with self._session.request(
                method,
                URL(url, encoded=True),
                data=data,
                headers=headers,
                timeout=self._client_timeout,
                allow_redirects=False,
                proxy=self._proxy.url,
                proxy_auth=self._proxy.auth,
            ) as response:
                raw = await response.read()
        text = raw.decode("utf-8", errors="replace")
        if not 200 <= response.status < 300:
            raise api_error(
                response.status, response.reason, response.headers, text, redactor=self._redactor
            )
        return _Reply(response.status, response.headers, text, self._redactor)


def _page(reply: _Reply, operation: str) -> QueryResponse:
    """One page of a paged query's answer: ``value`` (objects) and ``continuationToken``."""
    data = reply.json_object(operation)
    value = data.get("value", [])
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise reply.invalid(f"{operation} answered with a 'value' that is not a list")
    token = data.get("continuationToken")
    return QueryResponse(
        value=value,
        continuation_token=token if isinstance(token, str) and token else None,
        limits=RateLimits.from_headers(reply.headers),
        request_id=reply.request_id,
        server_date=server_date(reply.headers),
    )


def create_run_url(endpoint: str, spec: RunSpec) -> str:
    """The exact, percent-encoded createRun URL for ``spec`` (``--dry-run`` prints it)."""
    url = _create_run_url(
        endpoint, spec.subscription, spec.resource_group, spec.factory, spec.pipeline
    )
    recovery = spec.recovery_query()
    if not recovery:
        return url
    return f"{url}&{urlencode(recovery, quote_via=quote)}"


@functools.lru_cache(maxsize=4096)
def _create_run_url(
    endpoint: str, subscription: str, resource_group: str, factory: str, pipeline: str
) -> str:
    # a batch posts to a few pipelines many times: each URL is encoded once
    base = _factory_url(endpoint.rstrip("/"), subscription, resource_group, factory)
    query = urlencode({"api-version": API_VERSION}, quote_via=quote)
    return f"{base}/pipelines/{_seg(pipeline)}/createRun?{query}"


def _factory_url(endpoint: str, subscription: str, resource_group: str, factory: str) -> str:
    return (
        f"{endpoint}/subscriptions/{_seg(subscription)}"
        f"/resourceGroups/{_seg(resource_group)}"
        f"/providers/Microsoft.DataFactory/factories/{_seg(factory)}"
    )


def _seg(value: str) -> str:
    return quote(value, safe="")


def _json_default(value: object) -> str:
    # YAML turns 2024-01-31 into a date; ADF wants the string the user wrote.
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# json.dumps with arguments builds an encoder for every call: one body a run, built once
_BODY: Final = json.JSONEncoder(separators=(",", ":"), default=_json_default)
