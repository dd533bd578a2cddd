"""The managed-identity token endpoint, App Service / Container Apps form (api-version 2019-08-01).

``azure.identity.aio.ManagedIdentityCredential`` calls it when IDENTITY_ENDPOINT and
IDENTITY_HEADER are set: ``GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=R`` with the
secret in ``X-IDENTITY-HEADER``; it reads access_token, expires_on, resource and token_type.
"""

from __future__ import annotations

import hmac
import uuid
from typing import TYPE_CHECKING

from aiohttp import web

from batchrun.emulator.arm import Dropped, json_response

if TYPE_CHECKING:
    from batchrun.emulator.state import EmulatorState

PATH = "/msi/token"
API_VERSION = "2019-08-01"
CLIENT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://batchrun.invalid/emulator/identity"))


def _refused(status: int, description: str) -> web.Response:
    error = "invalid_request" if status == 400 else "unauthorized_client"
    return json_response(status, {"error": error, "error_description": description})


class IdentityEndpoint:
    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._issued = 0

    def routes(self) -> list[web.RouteDef]:
        return [web.get(PATH, self.token, name="msiToken")]

    async def token(self, request: web.Request) -> web.StreamResponse:
        state = self._state
        secret = request.headers.get("X-IDENTITY-HEADER")
        if secret is None:
            return _refused(400, "The X-IDENTITY-HEADER header is required.")
        if not hmac.compare_digest(secret.encode(), state.settings.identity_header.encode()):
            return _refused(401, "The X-IDENTITY-HEADER value is not this endpoint's secret.")
        version = request.query.get("api-version")
        if version != API_VERSION:
            return _refused(400, f"api-version must be {API_VERSION}, not {version!r}.")
        resource = request.query.get("resource")
        if not resource:
            return _refused(400, "The resource query parameter is required.")
        limit = state.settings.identity_fail_after
        if limit is not None and self._issued >= limit:
            # the endpoint is down: the connection is cut, as a crashed sidecar does
            if request.transport is not None:
                request.transport.close()
            return Dropped(status=500)
        self._issued += 1
        expires_on = int(state.clock.time()) + state.settings.token_ttl_s
        return json_response(
            200,
            {
                "access_token": state.token,
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": CLIENT_ID,
            },
        )
