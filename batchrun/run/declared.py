"""What a manifest sends to a pipeline, checked against what the pipeline declares.

Pure: the pipeline's definition (ADF's PipelineResource) comes in, findings go out, nothing is
read here (:mod:`batchrun.run.preflight` reads). ADF matches parameter names without regard to
case, so ``Run_Date`` is the declared ``run_date``. A pipeline that declares no ``parameters``
takes none: whatever is sent to it is undeclared.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from batchrun.model import RunSpec

__all__ = ["QUEUE_CAP", "Definition", "parameter_problems", "queue_problem"]

# ADF queues at most this many runs of a pipeline whose concurrency is set; the next createRun
# is refused ("Pipeline execution throttled ... a maximum of 100 runs will be queued")
QUEUE_CAP: Final = 100


@dataclass(frozen=True, slots=True)
class Definition:
    """The parts of a pipeline's definition a manifest depends on."""

    name: str
    # declared name -> whether it has a default value
    parameters: Mapping[str, bool]
    concurrency: int | None

    @classmethod
    def from_resource(cls, resource: Mapping[str, Any], *, asked: str) -> Definition:
        properties = resource.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        declared = properties.get("parameters")
        declared = declared if isinstance(declared, Mapping) else {}
        concurrency = properties.get("concurrency")
        name = resource.get("name")
        return cls(
            name=name if isinstance(name, str) and name else asked,
            parameters={
                str(key): isinstance(spec, Mapping) and "defaultValue" in spec
                for key, spec in declared.items()
            },
            concurrency=concurrency
            if isinstance(concurrency, int) and not isinstance(concurrency, bool)
            else None,
        )


def parameter_problems(spec: RunSpec, pipeline: Definition) -> list[str]:
    """The parameters ``spec`` sends that ``pipeline`` does not declare, and those it declares
    without a default that ``spec`` does not send. A rerun (``reference_run_id``) gets the
    reference run's parameters from ADF, so it has none to check."""
    if spec.reference_run_id is not None:
        return []
    declared = {name.casefold(): name for name in pipeline.parameters}
    sent = {name.casefold() for name in spec.parameters}
    problems: list[str] = []
    for name in spec.parameters:
        if name.casefold() in declared:
            continue
        listed = ", ".join(sorted(pipeline.parameters, key=str.casefold)) or "none"
        close = difflib.get_close_matches(name, list(pipeline.parameters), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        problems.append(
            f"parameter '{name}' is not declared by pipeline {pipeline.name} "
            f"(it declares: {listed}){hint}"
        )
    for key, name in sorted(declared.items()):
        if key not in sent and not pipeline.parameters[name]:
            problems.append(
                f"pipeline {pipeline.name} declares '{name}' without a default value, "
                "and this entry does not send it"
            )
    return problems


def queue_problem(runs: Sequence[RunSpec], pipeline: Definition) -> tuple[RunSpec, str] | None:
    """The first run past what ADF holds for a pipeline with ``concurrency``, and why: the runs
    sent at once start ``concurrency`` of them, queue :data:`QUEUE_CAP` more, and refuse the rest
    until earlier runs end."""
    if pipeline.concurrency is None:
        return None
    holds = pipeline.concurrency + QUEUE_CAP
    if len(runs) <= holds:
        return None
    message = (
        f"pipeline {pipeline.name} has concurrency {pipeline.concurrency}: ADF runs "
        f"{pipeline.concurrency} at once and queues at most {QUEUE_CAP} more, and this manifest "
        f"sends it {len(runs)} runs; from this entry on, {len(runs) - holds} would be refused "
        "('Pipeline execution throttled') until earlier runs end: split the night, or raise "
        "the pipeline's concurrency"
    )
    return runs[holds], message
