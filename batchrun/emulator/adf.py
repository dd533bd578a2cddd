"""The ADF operations: createRun, queryPipelineRuns, get and cancel a pipeline run, get a pipeline.

Where the reference says nothing, these are the emulator's choices:

- unknown subscription / resource group / factory: 404 ``SubscriptionNotFound`` /
  ``ResourceGroupNotFound`` / ``ResourceNotFound`` (ARM's codes); unknown pipeline: 404
  ``PipelineNotFound``; unknown run: 404 ``PipelineRunNotFound``.
- a name breaking the spec's pattern, a body that is not a JSON object, a bad boolean, an
  undeclared parameter, a bad filter: 400 ``BadRequest`` with ``target`` naming the culprit.
- ``referencePipelineRunId`` that is not a visible run of the same pipeline in the factory:
  400 ``ReferencedPipelineRunNotValid``; ``isRecovery=true`` without it: 400 ``BadRequest``.
  With a reference the body is ignored (the reference run's parameters are used).
- cancel of a finished run: 400 ``PipelineRunNotRunning``; of a Canceling run: 200, no change;
  ``isRecursive`` is validated and counted (``/_emulator/stats`` ``cancels``): there are no child
  runs to cancel.
- queryActivityruns: see :mod:`activities` (activities split the run's time; a failed run fails
  in one activity with an ADF-style error).
- a Cancelled run has ``runEnd``/``durationInMs`` null, as in the reference query example.
- a run inside its visibility delay does not exist for any read: GET/cancel 404, queries skip
  it, and it cannot be a reference run yet.
- names are matched case-insensitively; a run reports its pipeline as configured (or, with
  ``accept_any``, as first spelled).
- a run's parameters are those sent plus the declared defaults of those not sent.
- a pipeline with a concurrency value that already holds ``queue_cap`` Queued runs refuses
  createRun with ``queue_refusal_status``/``queue_refusal_code`` ("Pipeline execution
  throttled. …"); ADF documents the message, not the status or code.
- a subscription of ``foreign_tenant_subscriptions``: 401 ``InvalidAuthenticationTokenTenant``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from batchrun.emulator.activities import Plan, query_activities
from batchrun.emulator.arm import READ, WRITE, Dropped, error_response, json_response
from batchrun.emulator.config import FactorySpec, PipelineSpec
from batchrun.emulator.faults import Fault
from batchrun.emulator.pipelines import etag, pipeline_resource
from batchrun.emulator.query import query, render, view
from batchrun.emulator.store import FINISHED, Run
from batchrun.emulator.wire import (
    TICKS_PER_SECOND,
    ArmError,
    bad_request,
    canonical_json,
    check_name,
    parse_bool,
)

if TYPE_CHECKING:
    from batchrun.emulator.queue import PipelineQueue
    from batchrun.emulator.state import EmulatorState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

FACTORY = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    "/providers/Microsoft.DataFactory/factories/{factoryName}"
)

_BAD_GATEWAY = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>emulated gateway</center>"
    "</body></html>"
)


_SIGN_IN_PAGE = (
    "<html><head><title>Sign in</title></head><body><p>Your session has expired.</p></body></html>"
)


class AdfApi:
    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(
                FACTORY + "/pipelines/{pipelineName}",
                self._arm(READ, self.get_pipeline),
                name="getPipeline",
            ),
            web.post(
                FACTORY + "/pipelines/{pipelineName}/createRun",
                self._arm(WRITE, self.create_run),
                name="createRun",
            ),
            web.post(
                FACTORY + "/queryPipelineRuns",
                self._arm(READ, self.query_runs),
                name="queryPipelineRuns",
            ),
            web.get(
                FACTORY + "/pipelineruns/{runId}",
                self._arm(READ, self.get_run),
                name="getPipelineRun",
            ),
            web.post(
                FACTORY + "/pipelineruns/{runId}/queryActivityruns",
                self._arm(READ, self.query_activity_runs),
                name="queryActivityruns",
            ),
            web.post(
                FACTORY + "/pipelineruns/{runId}/cancel",
                self._arm(WRITE, self.cancel_run),
                name="cancelPipelineRun",
            ),
        ]

    def _arm(self, kind: str, inner: Handler) -> Handler:
        """ARM's checks in ARM's order: token, api-version, the subscription's budget."""

        async def handler(request: web.Request) -> web.StreamResponse:
            door = self._state.door
            limit_headers: dict[str, str] = {}
            try:
                token = door.authenticate(request)
                subscription = request.match_info["subscriptionId"]
                self._state.tenants.check(subscription)
                door.check_api_version(request)
                limit_headers = door.admit(subscription, kind, token)
                response = await inner(request)
            except ArmError as exc:
                response = error_response(exc)
            response.headers.update(limit_headers)
            return response

        return handler

    # --- lookups -------------------------------------------------------------------------------

    def _factory(self, request: web.Request) -> FactorySpec:
        subscription = request.match_info["subscriptionId"]
        group = request.match_info["resourceGroupName"]
        name = request.match_info["factoryName"]
        check_name("resourceGroupName", group)
        check_name("factoryName", name)
        topology = self._state.topology
        factory = topology.factory(subscription, group, name)
        if factory is not None and factory.key not in topology.factories:
            # accept_any made it up: the first spelling of each name is the name
            spell = self._state.spellings.canonical
            return FactorySpec(
                spell(name=subscription),
                spell(subscription, name=group),
                spell(subscription, group, name=name),
            )
        if factory is not None:
            return factory
        if not topology.subscription_known(subscription):
            message = f"The subscription '{subscription}' could not be found."
            raise ArmError(404, "SubscriptionNotFound", message)
        if not topology.resource_group_known(subscription, group):
            raise ArmError(
                404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found."
            )
        raise ArmError(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.DataFactory/factories/{name}' under resource group "
            f"'{group}' was not found. For more details please go to "
            "https://aka.ms/ARMResourceNotFoundFix",
        )

    def _pipeline(self, request: web.Request, factory: FactorySpec) -> PipelineSpec:
        name = request.match_info["pipelineName"]
        check_name("pipelineName", name)
        pipeline = self._state.topology.pipeline(factory, name)
        if pipeline is not None and name.casefold() not in factory.pipelines:
            # accept_any made it up: the first spelling is the pipeline's name
            pipeline = PipelineSpec(self._state.spellings.canonical(*factory.key, name=name))
        if pipeline is None:
            raise ArmError(
                404,
                "PipelineNotFound",
                f"Pipeline '{name}' was not found in factory '{factory.name}'.",
                target="pipelineName",
            )
        return pipeline

    def _run(self, request: web.Request, factory: FactorySpec) -> Run:
        run_id = request.match_info["runId"]
        run = self._state.store.find(factory.key, run_id, self._state.now())
        if run is None:
            raise ArmError(
                404,
                "PipelineRunNotFound",
                f"Pipeline run '{run_id}' was not found in factory '{factory.name}'.",
                target="runId",
            )
        return run

    # --- faults --------------------------------------------------------------------------------

    async def _faulted(
        self, request: web.Request, operation: Callable[[], web.Response]
    ) -> web.Response:
        """Run ``operation`` under the seeded fault plan (before-faults skip it entirely)."""
        state = self._state
        fault = state.faults.draw()
        delay = state.faults.latency_s()
        if delay > 0:
            await asyncio.sleep(delay)
        if fault is Fault.FAIL_500:
            raise _internal_error()
        if fault is Fault.FAIL_503:
            wait = state.settings.fail_503_retry_after_s
            raise ArmError(
                503,
                "ServiceUnavailable",
                "The service is temporarily unavailable. Please try again later.",
                headers={"Retry-After": str(wait)} if wait else None,
            )
        if fault is Fault.FAIL_502_HTML:
            return web.Response(status=502, text=_BAD_GATEWAY, content_type="text/html")
        response = operation()
        if fault is Fault.FAIL_500_AFTER_CREATE:
            raise _internal_error()
        if fault is Fault.GARBLED_AFTER_CREATE:
            # a proxy's or gateway's page with a 200: the run exists, the answer does not say so
            return web.Response(status=200, text=_SIGN_IN_PAGE, content_type="text/html")
        if fault is Fault.DROP_AFTER_CREATE:
            if request.transport is not None:
                request.transport.close()
            return Dropped(status=200)
        if fault is Fault.STALL_AFTER_CREATE:
            await asyncio.sleep(state.settings.stall_ms / 1000)
        return response

    # --- operations ----------------------------------------------------------------------------

    async def create_run(self, request: web.Request) -> web.StreamResponse:
        state = self._state
        factory = self._factory(request)
        pipeline = self._pipeline(request, factory)
        query = request.query
        reference_id = query.get("referencePipelineRunId") or None
        is_recovery = parse_bool(query.get("isRecovery"), field="isRecovery")
        start_activity = query.get("startActivityName") or None
        start_from_failure = parse_bool(query.get("startFromFailure"), field="startFromFailure")
        body = await _json_object(request)
        if is_recovery and reference_id is None:
            raise bad_request(
                "isRecovery=true needs referencePipelineRunId: the run to recover.",
                target="referencePipelineRunId",
            )
        reference: Run | None = None
        if reference_id is not None:
            reference = state.store.find(factory.key, reference_id, state.now())
            if reference is None or reference.pipeline_name.casefold() != pipeline.name.casefold():
                where = "" if reference is None else f" of pipeline '{pipeline.name}'"
                raise ArmError(
                    400,
                    "ReferencedPipelineRunNotValid",
                    f"Referenced pipeline run id {reference_id} is not a valid run id{where}.",
                    target=f"pipeline/{pipeline.name}/",
                )
            # the reference run's parameters are used; the body is ignored
            parameters = reference.parameters
        else:
            _check_declared(pipeline, body)
            parameters = {**pipeline.defaults(), **body}
        queue = self._queue_with_room(factory, pipeline)
        recovery = "&".join(
            f"{name}={value}"
            for name, value in (
                ("referencePipelineRunId", reference_id),
                ("isRecovery", is_recovery),
                ("startActivityName", start_activity),
                ("startFromFailure", start_from_failure),
            )
            if value is not None
        )

        def create() -> web.Response:
            run = state.store.create(
                factory.key,
                pipeline.name,
                parameters,
                now=state.now(),
                failed=state.faults.run_fails(pipeline.failure_rate),
                group_of=reference if is_recovery else None,
                queued=_ticks(pipeline.queued_ms),
                duration=_ticks(pipeline.duration_ms),
                failure_message=Plan.of(pipeline, pipeline.name).run_message(),
                invoked_by_type="Manual" if reference is None else state.settings.rerun_invoked_by,
            )
            if queue is not None:
                queue.admit(run, state.now())
            key = (*factory.key, pipeline.name.casefold(), canonical_json(parameters), recovery)
            state.stats.created(key, factory=factory.path, pipeline=pipeline.name)
            return json_response(200, {"runId": run.run_id})

        return await self._faulted(request, create)

    def _queue_with_room(
        self, factory: FactorySpec, pipeline: PipelineSpec
    ) -> PipelineQueue | None:
        """The pipeline's queue (None without a concurrency value); refused when it is full."""
        if pipeline.concurrency is None:
            return None
        state = self._state
        queue = state.queues.of(factory.key, pipeline.name, pipeline.concurrency)
        s = state.settings
        if queue.queued(state.now()) >= s.queue_cap:
            wait = s.queue_refusal_retry_after_s
            raise ArmError(
                s.queue_refusal_status,
                s.queue_refusal_code,
                "Pipeline execution throttled. If the concurrency value is set for a pipeline, "
                f"a maximum of {s.queue_cap} runs will be queued for execution.",
                headers={"Retry-After": str(wait)} if wait else None,
            )
        return queue

    async def get_pipeline(self, request: web.Request) -> web.StreamResponse:
        factory = self._factory(request)
        pipeline = self._pipeline(request, factory)

        def answer() -> web.Response:
            tag = etag(pipeline)
            if request.headers.get("If-None-Match") in (tag, f'"{tag}"', "*"):
                return web.Response(status=304)
            return json_response(200, pipeline_resource(factory, pipeline))

        return await self._read(request, answer)

    async def query_runs(self, request: web.Request) -> web.StreamResponse:
        factory = self._factory(request)
        body = await _json_object(request, required=True)
        state = self._state

        def answer() -> web.Response:
            runs = state.store.existing(factory.key)
            single = state.settings.single_run_group_filter
            return json_response(200, query(runs, body, state.now(), single_run_group=single))

        return await self._read(request, answer)

    async def get_run(self, request: web.Request) -> web.StreamResponse:
        factory = self._factory(request)
        state = self._state

        def answer() -> web.Response:
            run = self._run(request, factory)
            runs = state.store.factory(factory.key)
            return json_response(200, render(view(runs, run, state.now())))

        return await self._read(request, answer)

    async def query_activity_runs(self, request: web.Request) -> web.StreamResponse:
        factory = self._factory(request)
        body = await _json_object(request, required=True)
        state = self._state

        def answer() -> web.Response:
            run = self._run(request, factory)
            pipeline = state.topology.pipeline(factory, run.pipeline_name)
            plan = Plan.of(pipeline, run.pipeline_name)
            return json_response(200, query_activities(run, plan, body, state.now()))

        return await self._read(request, answer)

    async def cancel_run(self, request: web.Request) -> web.StreamResponse:
        factory = self._factory(request)
        recursive = parse_bool(request.query.get("isRecursive"), field="isRecursive")
        run = self._run(request, factory)
        state = self._state
        status = state.store.cancel(run, state.now())
        # the emulator has no child runs to cancel: it counts what was asked, for tests to see
        state.stats.cancel_requested(recursive=recursive is True)
        queue = state.queues.existing(factory.key, run.pipeline_name)
        if queue is not None:
            queue.plan(state.now())  # a cancel may free a slot for the next run waiting
        if status in FINISHED:
            raise ArmError(
                400,
                "PipelineRunNotRunning",
                f"Pipeline run has already completed with status '{status}'. Only pipeline runs "
                "that are in progress or queued can be canceled.",
                target="runId",
            )
        return json_response(200, None)

    async def _read(
        self, request: web.Request, answer: Callable[[], web.Response]
    ) -> web.StreamResponse:
        if self._state.settings.faults_on_reads:
            return await self._faulted(request, answer)
        return answer()


def _ticks(milliseconds: int | None) -> int | None:
    return None if milliseconds is None else milliseconds * TICKS_PER_SECOND // 1000


def _internal_error() -> ArmError:
    return ArmError(
        500,
        "InternalServerError",
        "An internal server error occurred. Please try again later.",
    )


def _check_declared(pipeline: PipelineSpec, parameters: dict[str, Any]) -> None:
    if pipeline.parameters is None:
        return
    for name in parameters:
        if name not in pipeline.parameters:
            declared = ", ".join(sorted(pipeline.parameters)) or "none"
            raise bad_request(
                f"The parameter '{name}' is not declared by pipeline '{pipeline.name}' "
                f"(declared: {declared}).",
                target=f"parameters.{name}",
            )


async def _json_object(request: web.Request, *, required: bool = False) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise bad_request("The request body is required: a RunFilterParameters object.")
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad_request("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        kind = _JSON_KINDS.get(type(body), type(body).__name__)
        expected = "a RunFilterParameters object" if required else "the parameters object ({})"
        raise bad_request(f"The request body must be a JSON object, not {kind}: send {expected}.")
    return body


_JSON_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}
