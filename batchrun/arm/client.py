"""``AdfClient``: the Data Factory calls batchrun makes, over the process's one aiohttp session.

Every answer other than 2xx becomes an :class:`~batchrun.errors.ApiError`:

=======================  =========  =====================================================
status                   transient  sent (may the service have acted?)
=======================  =========  =====================================================
408, 500, 502, 503, 504  yes        yes (ambiguous)
429                      yes        no (throttled before acting)
401, 403                 no         no (rejected before acting)
any other                no         yes
=======================  =========  =====================================================

Two answers are classified by what they say rather than by their status:

- **ADF's own queue** (:func:`is_queue_refusal`): a createRun refused with "Pipeline execution
  throttled" (a pipeline with a ``concurrency`` value holds 100 queued runs at most). ADF
  documents the message, not the status: whatever the status, it is transient and not sent
  (nothing was created), and it concerns that pipeline only.
- **Another tenant** (:func:`is_wrong_tenant`): a 401 ``InvalidAuthenticationTokenTenant``, or
  ``InvalidAuthenticationToken`` whose message speaks of the tenant or issuer: the token is
  good, but not for that subscription.

Failures without a response are :class:`~batchrun.errors.TransportError` (see
:mod:`batchrun.arm.transport`). A 2xx whose body is not what the API promises is an
``ApiError`` with code ``InvalidResponse``: permanent for reads; for a createRun it is
ambiguous (transient and sent: the run may exist, so it is looked for before any re-post).

Whatever a server sends back may echo the request, bearer token included, and escaped
(``\\/``, ``\\u0065``, ``&#101;``) so that a plain search misses it. Every token sent is
registered with the client's :class:`~batchrun.log.Redactor`, and every text from a server is
scrubbed after it is decoded and before it becomes an error, a report line or a log.
"""

from __future__ import annotations

import functools
import html
import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import quote, urlencode, urlsplit

from multidict import CIMultiDict
from yarl import URL

from batchrun import __version__
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
from batchrun.text import shorten

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
    "api_error",
    "build_session",
    "create_run_url",
    "is_queue_refusal",
    "is_wrong_tenant",
    "parse_retry_after",
    "tenant_named",
]

API_VERSION = "2018-06-01"
USER_AGENT = f"batchrun/{__version__}"
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
NOT_SENT_STATUSES = frozenset({401, 403, 429})
_SNIPPET_CHARS = 200
# ADF's words when a pipeline's queue is full; matched case-insensitively, whatever the status
QUEUE_REFUSAL = "pipeline execution throttled"
_TENANT_HINT = re.compile(r"\b(tenant|issuer)\b", re.IGNORECASE)
# the tenant ARM names in its 401: "use the authority (URL) 'https://login.windows.net/<id>'"
_TENANT_ID = re.compile(r"login\.[\w.-]+/([0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12})")


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
        return _header(self.headers, "x-ms-request-id", self.redactor)

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
        return ApiError(
            status=self.status,
            code="InvalidResponse",
            message=f"{message}{maybe}: {_snippet(self.text, self.redactor) or '(empty body)'}",
            request_id=self.request_id,
            correlation_id=_header(self.headers, "x-ms-correlation-request-id", self.redactor),
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
            correlation_id=_header(reply.headers, "x-ms-correlation-request-id", self._redactor),
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


def api_error(
    status: int,
    reason: str | None,
    headers: Mapping[str, str],
    text: str,
    *,
    redactor: Redactor | None = None,
) -> ApiError:
    """The ApiError for an error answer: a CloudError body, or whatever text came instead.

    Every field taken from the answer is scrubbed by ``redactor`` (JWT and bearer shapes only
    when none is given) after decoding.
    """
    redactor = redactor or Redactor()
    headers = CIMultiDict(headers)
    reason = redactor.text(reason or _phrase(status))
    code, message, target, details = _cloud_error(text)
    if message is None:
        snippet = _snippet(text, redactor)
        message = f"{reason}: {snippet}" if snippet else f"{reason} (empty body)"
    queue_full = QUEUE_REFUSAL in message.casefold()
    return ApiError(
        status=status,
        code=redactor.text(code) if code else f"HttpError{status}",
        message=redactor.text(message),
        target=redactor.text(target) if target is not None else None,
        details=redactor.value(details) if details is not None else None,
        request_id=_header(headers, "x-ms-request-id", redactor),
        correlation_id=_header(headers, "x-ms-correlation-request-id", redactor),
        retry_after=parse_retry_after(headers),
        remaining_writes=RateLimits.from_headers(headers).remaining_writes,
        transient=queue_full or status in TRANSIENT_STATUSES,
        sent=not queue_full and status not in NOT_SENT_STATUSES,
    )


def is_queue_refusal(error: ApiError) -> bool:
    """ADF refused a createRun because the pipeline's queue is full: later, never failed."""
    return QUEUE_REFUSAL in error.message.casefold()


def is_wrong_tenant(error: ApiError) -> bool:
    """A 401 that says the token is from another tenant than the subscription's."""
    if error.status != 401:
        return False
    if error.code == "InvalidAuthenticationTokenTenant":
        return True
    return error.code == "InvalidAuthenticationToken" and bool(_TENANT_HINT.search(error.message))


def tenant_named(error: ApiError) -> str | None:
    """The tenant id a wrong-tenant 401 says the subscription belongs to, if it names one."""
    match = _TENANT_ID.search(error.message)
    return match.group(1) if match else None


def _cloud_error(text: str) -> tuple[str | None, str | None, str | None, list[Any] | None]:
    """``(code, message, target, details)`` of ``{"error": {…}}`` or a bare ``{code, message}``."""
    try:
        data = json.loads(text)
    except ValueError:
        return None, None, None, None
    if not isinstance(data, dict):
        return None, None, None, None
    body = _field(data, "error")
    if isinstance(body, dict):
        data = body
    elif isinstance(body, str):  # OAuth style: {"error": "invalid_token", "error_description": …}
        message = _field(data, "error_description") or _field(data, "message")
        data = {"code": body, "message": message}
    code, message, target = (_field(data, key) for key in ("code", "message", "target"))
    details = _field(data, "details")
    if details is not None and not isinstance(details, list):
        details = [details]
    return (
        str(code) if code else None,
        str(message) if message else None,
        str(target) if target else None,
        details,
    )


def _field(data: Mapping[str, Any], key: str) -> Any:
    # ARM's own gateway errors sometimes capitalise the keys ({"Code": …, "Message": …}).
    return data.get(key, data.get(key.capitalize()))


def _snippet(text: str, redactor: Redactor) -> str:
    """The start of a non-JSON body as readable text: tags stripped, entities and JSON string
    escapes decoded, whitespace collapsed, then scrubbed (before it is cut: half a token is
    still a secret)."""
    text = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", text)
    text = html.unescape(re.sub(r"<[^>]*>", " ", text))
    text = _JSON_ESCAPE.sub(_unescape_json, text)
    text = redactor.text(" ".join(text.split()))
    return shorten(text, _SNIPPET_CHARS, cut_to=_SNIPPET_CHARS)


# \uXXXX and the escapes of a JSON string, as they appear in a body that is JSON-ish but not
# valid JSON (cut off, or not the CloudError shape)
_JSON_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|[\\/\"bfnrt])")


def _unescape_json(match: re.Match[str]) -> str:
    escape = match.group(1)
    if escape[0] != "u":
        return escape if escape in '\\/"' else " "
    code = int(escape[1:], 16)
    # half a surrogate pair is not text (it cannot even be printed): leave it escaped
    return match.group(0) if 0xD800 <= code <= 0xDFFF else chr(code)


def _header(headers: Mapping[str, str], name: str, redactor: Redactor) -> str | None:
    value = headers.get(name)
    return None if value is None else redactor.text(value)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _seg(value: str) -> str:
    return quote(value, safe="")


def _json_default(value: object) -> str:
    # YAML turns 2024-01-31 into a date; ADF wants the string the user wrote.
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# json.dumps with arguments builds an encoder for every call: one body a run, built once
_BODY: Final = json.JSONEncoder(separators=(",", ":"), default=_json_default)
