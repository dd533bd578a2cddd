"""A scripted fake ADF for the scheduler in-process: createRun creates a run and then answers as
each run's script says; queryPipelineRuns lists the runs as ADF would (PipelineName and
RunGroupId filters honoured, a Date header); every request is recorded."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from batchrun.arm.client import CreateRunResponse, QueryResponse, RateLimits
from batchrun.errors import ApiError, TransportError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from batchrun.model import RunSpec

__all__ = ["MANUAL", "ScriptedAdf"]

MANUAL = {"name": "Manual", "id": "m", "invokedByType": "Manual"}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "1Z"


class ScriptedAdf:
    """``script[spec_id]`` is a list of what each createRun of that entry meets, in turn:

    - ``"ok"``: created, answered 200 (the default once the list is spent);
    - ``"drop"``: created, the answer lost on the way back (sent, transient);
    - ``"503"``: answered 503 without creating (the client cannot know that: ambiguous);
    - ``"refused"``: the connection was refused (never sent, so certainly not created);
    - ``"429"``: throttled, ``Retry-After: 0``.

    ``before_send(spec, client_request_id)`` is called as each createRun arrives.
    """

    def __init__(
        self,
        script: dict[str, list[str]] | None = None,
        *,
        read_error: ApiError | None = None,
        before_send: Callable[[RunSpec, str], None] | None = None,
    ) -> None:
        self.script = {key: list(value) for key, value in (script or {}).items()}
        self.read_error = read_error
        self.before_send = before_send
        self.runs: list[dict[str, Any]] = []
        self.sends: list[tuple[str, str]] = []  # (spec id, client request id)
        self.queries = 0

    def created(self, spec_id: str) -> list[str]:
        return [run["runId"] for run in self.runs if run["spec_id"] == spec_id]

    def add_run(self, spec: RunSpec, *, spec_id: str | None = None) -> str:
        """A manual run of ``spec``'s pipeline with its parameters, started now."""
        run_id = str(uuid.uuid4())
        self.runs.append(
            {
                "runId": run_id,
                "runGroupId": run_id,
                "spec_id": spec_id,
                "pipelineName": spec.pipeline,
                "parameters": {
                    k: v if isinstance(v, str) else str(v) for k, v in spec.parameters.items()
                },
                "invokedBy": MANUAL,
                "runStart": _stamp(datetime.now(UTC)),
            }
        )
        return run_id

    async def create_run(self, spec: RunSpec, *, client_request_id: str) -> CreateRunResponse:
        self.sends.append((spec.id, client_request_id))
        if self.before_send is not None:
            self.before_send(spec, client_request_id)
        await asyncio.sleep(0)
        steps = self.script.get(spec.id) or []
        step = steps.pop(0) if steps else "ok"
        if step == "refused":
            raise TransportError(
                status=None, code="ClientConnectorError", message="m", transient=True, sent=False
            )
        if step == "503":
            raise ApiError(status=503, code="ServiceUnavailable", message="m", transient=True)
        if step == "429":
            raise ApiError(
                status=429, code="TooManyRequests", message="m", transient=True, retry_after=0.0
            )
        run_id = self.add_run(spec, spec_id=spec.id)
        if step == "drop":
            raise TransportError(
                status=None, code="ServerDisconnected", message="m", transient=True, sent=True
            )
        return CreateRunResponse(
            run_id, 200, f"req-{run_id}", f"corr-{run_id}", RateLimits(writes=1000)
        )

    async def query_pipeline_runs(
        self, *, filter_parameters: Mapping[str, Any], **_: Any
    ) -> QueryResponse:
        self.queries += 1
        if self.read_error is not None:
            raise self.read_error
        operands = {"PipelineName": "pipelineName", "RunGroupId": "runGroupId"}
        filters = filter_parameters.get("filters", [])
        runs = [
            run
            for run in self.runs
            if all(run[operands[f["operand"]]] in f["values"] for f in filters)
        ]
        date = datetime.now(UTC).replace(microsecond=0)
        return QueryResponse(runs, None, RateLimits(reads=1000), None, server_date=date)

    async def get_pipeline_run(self, **_: Any) -> dict[str, Any]:
        raise AssertionError("no reference runs here")
