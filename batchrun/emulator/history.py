"""Past runs to seed the store with (recovery scenarios), from a JSON or YAML file.

The file is a list (or ``{runs: [...]}``) of PipelineRun-shaped objects plus the factory path::

    - factory: /subscriptions/S/resourceGroups/RG/providers/Microsoft.DataFactory/factories/F
      pipelineName: LoadOrders
      runId: 2f7fdb90-5df1-4b8e-ac2f-064cfa58202b
      runGroupId: 2f7fdb90-5df1-4b8e-ac2f-064cfa58202b   # optional, defaults to runId
      status: Failed
      runStart: "2026-11-20T02:00:00.0000000Z"
      runEnd: "2026-11-20T02:03:10.0000000Z"           # required for Succeeded/Failed
      parameters: {partition: 7}
      message: "Operation on target CopyOrders failed: ..."

Other fields a real queryPipelineRuns answer carries (isLatest, invokedBy, durationInMs, …) are
accepted and ignored, so a saved query answer plus ``factory`` seeds as is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import yaml

from batchrun.emulator.config import ConfigError, FactorySpec, Topology
from batchrun.emulator.store import FAILED, STATUSES, SUCCEEDED
from batchrun.emulator.wire import TICKS_PER_SECOND, ArmError, parse_time

if TYPE_CHECKING:
    from pathlib import Path

_FACTORY_PATH = re.compile(
    r"^/?subscriptions/([^/]+)/resourceGroups/([^/]+)"
    r"/providers/Microsoft\.DataFactory/factories/([^/]+)/?$",
    re.IGNORECASE,
)
_REQUIRED = {"factory", "pipelineName", "runId", "status", "runStart"}
_OPTIONAL = {"runGroupId", "runEnd", "lastUpdated", "parameters", "message"}
_IGNORED = {
    "isLatest",
    "invokedBy",
    "durationInMs",
    "runDimensions",
    "runDimension",
    "annotations",
    "id",
    "debugRunId",
}


@dataclass(frozen=True, slots=True)
class PastRun:
    factory: FactorySpec
    pipeline_name: str
    run_id: str
    group_id: str
    status: str
    run_start: int
    run_end: int | None
    last_updated: int | None
    parameters: dict[str, Any]
    message: str


def _time(entry: Mapping[str, Any], name: str, where: str) -> int | None:
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, datetime):  # YAML reads an unquoted timestamp as a datetime
        value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(value.timestamp()) * TICKS_PER_SECOND + value.microsecond * 10
    try:
        return parse_time(entry[name], field=name)
    except ArmError as exc:
        raise ConfigError(f"{where}.{name}: {exc.message}") from None


def _text(entry: Mapping[str, Any], name: str, where: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{name}: expected a non-empty string, got {value!r}")
    return value


def _past_run(entry: Any, topology: Topology, where: str) -> PastRun:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a run object, got {type(entry).__name__}")
    missing = sorted(_REQUIRED - set(entry))
    unknown = sorted(set(entry) - _REQUIRED - _OPTIONAL - _IGNORED)
    if missing or unknown:
        problems = [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"unknown key(s) {', '.join(unknown)}"] if unknown else []
        raise ConfigError(f"{where}: {'; '.join(problems)}")
    match = _FACTORY_PATH.match(_text(entry, "factory", where))
    if match is None:
        raise ConfigError(
            f"{where}.factory: expected /subscriptions/S/resourceGroups/RG"
            f"/providers/Microsoft.DataFactory/factories/F, got {entry['factory']!r}"
        )
    factory = topology.factory(match[1], match[2], match[3])
    if factory is None:
        raise ConfigError(f"{where}.factory: {entry['factory']} is not in the topology")
    pipeline = topology.pipeline(factory, _text(entry, "pipelineName", where))
    if pipeline is None:
        raise ConfigError(
            f"{where}.pipelineName: factory {factory.name} "
            f"has no pipeline {entry['pipelineName']!r}"
        )
    status = _text(entry, "status", where)
    if status not in STATUSES:
        raise ConfigError(f"{where}.status: {status!r} is not one of {', '.join(STATUSES)}")
    run_start = _time(entry, "runStart", where)
    assert run_start is not None
    run_end = _time(entry, "runEnd", where)
    if status in (SUCCEEDED, FAILED) and run_end is None:
        raise ConfigError(f"{where}.runEnd: a {status} run needs its runEnd")
    parameters = entry.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise ConfigError(f"{where}.parameters: expected an object of name: value")
    message = entry.get("message") or ""
    run_id = _text(entry, "runId", where)
    return PastRun(
        factory=factory,
        pipeline_name=pipeline.name,
        run_id=run_id,
        group_id=str(entry.get("runGroupId") or run_id),
        status=status,
        run_start=run_start,
        run_end=run_end,
        last_updated=_time(entry, "lastUpdated", where),
        parameters={str(name): value for name, value in parameters.items()},
        message=str(message),
    )


def parse_history(document: Any, topology: Topology, *, source: str) -> list[PastRun]:
    if isinstance(document, Mapping) and set(document) == {"runs"}:
        document = document["runs"]
    if not isinstance(document, list):
        raise ConfigError(f"{source}: expected a list of runs (or {{runs: [...]}})")
    runs = [_past_run(entry, topology, f"{source}: runs[{i}]") for i, entry in enumerate(document)]
    seen: set[str] = set()
    for index, run in enumerate(runs):
        if run.run_id.lower() in seen:
            raise ConfigError(f"{source}: runs[{index}].runId: {run.run_id} appears twice")
        seen.add(run.run_id.lower())
    return runs


def load_history(path: Path, topology: Topology) -> list[PastRun]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the history file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: neither JSON nor YAML: {exc}") from exc
    return parse_history(document, topology, source=str(path))
