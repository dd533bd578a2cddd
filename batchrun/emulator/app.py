"""The aiohttp application: routes, the headers every answer carries, one log line a request."""

from __future__ import annotations

import asyncio
import time
import uuid
from email.utils import formatdate
from typing import TYPE_CHECKING, TextIO

from aiohttp import web

from batchrun.emulator.adf import AdfApi
from batchrun.emulator.arm import Dropped, error_response, json_response
from batchrun.emulator.clock import Clock, SystemClock
from batchrun.emulator.config import Settings, Topology
from batchrun.emulator.identity import IdentityEndpoint
from batchrun.emulator.state import EmulatorState
from batchrun.emulator.wire import ArmError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aiohttp.typedefs import Handler, Middleware

    from batchrun.emulator.history import PastRun

STATE = web.AppKey("emulator_state", EmulatorState)

# aiohttp's own errors (no route, wrong method, body too large) as ARM-style codes
_HTTP_CODES = {404: "NotFound", 405: "MethodNotAllowed", 413: "RequestEntityTooLarge"}


def build_app(
    settings: Settings,
    topology: Topology,
    *,
    clock: Clock | None = None,
    history: Sequence[PastRun] = (),
    log: TextIO | None = None,
) -> web.Application:
    """The emulator as an application; ``log`` gets one line per request unless ``quiet``."""
    topology = Topology(topology.factories, accept_any=settings.accept_any or topology.accept_any)
    state = EmulatorState(settings, topology, clock=clock or SystemClock(), history=history)
    app = web.Application(middlewares=[_middleware(state, None if settings.quiet else log)])
    app[STATE] = state
    app.add_routes(AdfApi(state).routes())
    app.add_routes(IdentityEndpoint(state).routes())
    app.add_routes(
        [
            web.get("/_emulator/stats", _stats, name="_stats"),
            web.post("/_emulator/reset", _reset, name="_reset"),
        ]
    )
    return app


def _middleware(state: EmulatorState, log: TextIO | None) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = request.match_info.route.name or "other"
        counted = not route.startswith("_")
        if counted:
            state.stats.started()
        outcome = "error"
        try:
            try:
                response = await handler(request)
            except ArmError as exc:
                response = error_response(exc)
            except web.HTTPException as exc:
                code = _HTTP_CODES.get(exc.status, exc.reason.replace(" ", ""))
                response = error_response(ArmError(exc.status, code, exc.text or exc.reason))
            outcome = "dropped" if isinstance(response, Dropped) else str(response.status)
            _stamp(
                request,
                response,
                client_correlates=state.settings.correlation_from_client_request_id,
            )
            # ARM's Date is its clock: the emulator's, so a test can set the two clocks apart
            response.headers["Date"] = formatdate(state.clock.time(), usegmt=True)
            return response
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            if counted:
                state.stats.finished(route, outcome)
            if log is not None:
                elapsed = (time.perf_counter() - started) * 1000
                # method, path, outcome, time: no headers and no query, so never a token
                log.write(f"{request.method} {request.path} {outcome} {elapsed:.1f}ms\n")

    return middleware


def _stamp(request: web.Request, response: web.StreamResponse, *, client_correlates: bool) -> None:
    """x-ms-request-id on every answer; the correlation id is the caller's when it sent one.

    ARM echoes a caller's ``x-ms-correlation-request-id`` and otherwise makes its own (as in the
    spec's examples, the request id); ``client_correlates`` keeps the emulator's older habit of
    reusing ``x-ms-client-request-id`` instead.
    """
    request_id = str(uuid.uuid4())
    client_id = request.headers.get("x-ms-client-request-id")
    correlation = (
        request.headers.get("x-ms-correlation-request-id")
        or (client_id if client_correlates else None)
        or request_id
    )
    headers = response.headers
    headers["x-ms-request-id"] = request_id
    headers["x-ms-correlation-request-id"] = correlation
    if client_id is not None:
        headers["x-ms-client-request-id"] = client_id
    headers["X-Content-Type-Options"] = "nosniff"
    headers.setdefault("Cache-Control", "no-cache")


async def _stats(request: web.Request) -> web.StreamResponse:
    return json_response(200, request.app[STATE].stats.snapshot())


async def _reset(request: web.Request) -> web.StreamResponse:
    request.app[STATE].reset()
    return json_response(200, {"reset": True})
