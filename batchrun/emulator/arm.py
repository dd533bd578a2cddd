"""ARM's front door: bearer tokens, api-version, request limits, and how answers are written."""

from __future__ import annotations

import hmac
import json
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from batchrun.emulator.wire import API_VERSION, ArmError

if TYPE_CHECKING:
    from batchrun.emulator.config import Settings
    from batchrun.emulator.limits import Admission, ArmLimits

WRITE = "write"
READ = "read"

_WWW_AUTHENTICATE = (
    'Bearer authorization_uri="https://login.microsoftonline.com/common", '
    'error="invalid_token", error_description="The access token is missing or invalid."'
)


def principal_of(token: str) -> str:
    """A stable id for the caller behind an opaque token (never the token itself)."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, token))


class Dropped(web.Response):
    """Stands in for the answer of a request whose connection was cut on purpose."""


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text="" if body is None else json.dumps(body, ensure_ascii=False),
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def error_response(error: ArmError) -> web.Response:
    return json_response(error.status, error.body(), error.headers)


class FrontDoor:
    def __init__(self, settings: Settings, limits: ArmLimits) -> None:
        self._expected = settings.expect_token
        self._hourly = settings.hourly
        self._settings = settings
        self._limits = limits

    def authenticate(self, request: web.Request) -> str:
        """The bearer token; a 401 when it is missing, malformed or not the one expected."""
        header = request.headers.get("Authorization")
        if header is None:
            raise self._unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise self._unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid "
                "format (expected 'Bearer <token>').",
            )
        if self._expected is not None and not hmac.compare_digest(
            token.encode(), self._expected.encode()
        ):
            raise self._unauthorized("InvalidAuthenticationToken", "The access token is invalid.")
        return token

    @staticmethod
    def _unauthorized(code: str, message: str) -> ArmError:
        return ArmError(401, code, message, headers={"WWW-Authenticate": _WWW_AUTHENTICATE})

    @staticmethod
    def check_api_version(request: web.Request) -> None:
        version = request.query.get("api-version")
        if not version:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if version != API_VERSION:
            raise ArmError(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{version}' is invalid. The supported versions are "
                f"'{API_VERSION}'.",
            )

    def admit(self, subscription: str, kind: str, token: str) -> dict[str, str]:
        """Take one request from the subscription's budget: its headers, or a 429."""
        principal = principal_of(token)
        if kind == WRITE:
            admission = self._limits.write(subscription, principal)
        else:
            admission = self._limits.read(subscription, principal)
        if admission.allowed:
            return admission.headers
        raise self._throttled(admission, subscription, kind, token)

    def _throttled(
        self, admission: Admission, subscription: str, kind: str, token: str
    ) -> ArmError:
        wait = admission.retry_after_s
        actor = principal_of(token)
        if self._hourly:
            limit = self._settings.hourly_writes if kind == WRITE else self._settings.hourly_reads
            message = (
                f"Number of '{kind}' requests for subscription '{subscription}' actor '{actor}' "
                f"exceeded the limit of '{limit}' for time interval '01:00:00'. "
                f"Please try again after '{wait}' seconds."
            )
        elif admission.exhausted == "global":
            message = (
                f"Number of '{kind}' requests for subscription '{subscription}' from all actors "
                f"exceeded the global limit. Please try again after '{wait}' seconds after "
                "additional tokens are available. Refer to https://aka.ms/arm-throttling for "
                "additional information."
            )
        else:
            message = (
                f"Number of '{kind}' requests for subscription '{subscription}' actor '{actor}' "
                f"exceeded. Please try again after '{wait}' seconds after additional tokens are "
                "available. Refer to https://aka.ms/arm-throttling for additional information."
            )
        # a test's override: a client must survive a server asking for days
        told = self._settings.throttle_retry_after or str(wait)
        headers = dict(admission.headers, **{"Retry-After": told})
        return ArmError(429, "SubscriptionRequestsThrottled", message, headers=headers)
