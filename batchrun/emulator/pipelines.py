"""Pipelines_Get: a configured pipeline as the spec's PipelineResource.

The emulator knows a pipeline's name, parameters and concurrency, not its activities, so
``properties.activities`` is empty. The ETag is derived from what it knows, so it changes only
when the config does; ``If-None-Match`` with it (or ``*``) answers 304 without a body.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from batchrun.emulator.wire import canonical_json

if TYPE_CHECKING:
    from batchrun.emulator.config import FactorySpec, PipelineSpec

__all__ = ["etag", "pipeline_resource"]

RESOURCE_TYPE = "Microsoft.DataFactory/factories/pipelines"


def _properties(pipeline: PipelineSpec) -> dict[str, Any]:
    properties: dict[str, Any] = {"activities": []}
    if pipeline.parameters is not None:
        parameters: dict[str, Any] = {}
        for name in sorted(pipeline.parameters):
            spec = pipeline.definition(name)
            parameters[name] = {"type": spec.type}
            if spec.has_default:
                parameters[name]["defaultValue"] = spec.default
        properties["parameters"] = parameters
    if pipeline.concurrency is not None:
        properties["concurrency"] = pipeline.concurrency
    return properties


def etag(pipeline: PipelineSpec) -> str:
    """An ETag shaped like ADF's (``1500504f-0000-0200-0000-5cbe090f0000``)."""
    digest = hashlib.sha256(
        canonical_json([pipeline.name, _properties(pipeline)]).encode()
    ).hexdigest()
    return f"{digest[:8]}-0000-0200-0000-{digest[8:20]}"


def pipeline_resource(factory: FactorySpec, pipeline: PipelineSpec) -> dict[str, Any]:
    return {
        "id": f"{factory.path}/pipelines/{pipeline.name}",
        "name": pipeline.name,
        "type": RESOURCE_TYPE,
        "properties": _properties(pipeline),
        "etag": etag(pipeline),
    }
