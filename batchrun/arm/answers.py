"""An error answer from ARM or Data Factory read into an :class:`~batchrun.errors.ApiError`:
its CloudError (or whatever text came instead), scrubbed, and what it means for a retry:

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

Whatever a server sends back may echo the request, bearer token included, and escaped: every
field taken from an answer is scrubbed by the client's :class:`~batchrun.log.Redactor` after it
is decoded (:mod:`batchrun.arm.client`).
"""

from __future__ import annotations

import html
import json
import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

from batchrun.arm.ratelimit import RateLimits, parse_retry_after
from batchrun.errors import ApiError
from batchrun.log import Redactor
from batchrun.text import shorten

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "api_error",
    "is_queue_refusal",
    "is_wrong_tenant",
    "readable_snippet",
    "scrubbed_header",
    "tenant_named",
]

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
NOT_SENT_STATUSES = frozenset({401, 403, 429})
_SNIPPET_CHARS = 200
# ADF's words when a pipeline's queue is full; matched case-insensitively, whatever the status
QUEUE_REFUSAL = "pipeline execution throttled"
_TENANT_HINT = re.compile(r"\b(tenant|issuer)\b", re.IGNORECASE)
# the tenant ARM names in its 401: "use the authority (URL) 'https://login.windows.net/<id>'"
_TENANT_ID = re.compile(r"login\.[\w.-]+/([0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12})")


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
        snippet = readable_snippet(text, redactor)
        message = f"{reason}: {snippet}" if snippet else f"{reason} (empty body)"
    queue_full = QUEUE_REFUSAL in message.casefold()
    return ApiError(
        status=status,
        code=redactor.text(code) if code else f"HttpError{status}",
        message=redactor.text(message),
        target=redactor.text(target) if target is not None else None,
        details=redactor.value(details) if details is not None else None,
        request_id=scrubbed_header(headers, "x-ms-request-id", redactor),
        correlation_id=scrubbed_header(headers, "x-ms-correlation-request-id", redactor),
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


def readable_snippet(text: str, redactor: Redactor) -> str:
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


def scrubbed_header(headers: Mapping[str, str], name: str, redactor: Redactor) -> str | None:
    value = headers.get(name)
    return None if value is None else redactor.text(value)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
