"""queryPipelineRuns: RunFilterParameters → one page of PipelineRun objects.

Paging is keyset-based: the opaque continuationToken carries the sort key of the last run
returned, so a page never repeats or skips a run whose sort key did not change in between.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchrun.emulator.store import STATUSES, FactoryRuns, Run
from batchrun.emulator.wire import TICKS_PER_SECOND, bad_request, format_time, parse_time

PAGE_SIZE = 100
TICKS_PER_MS = TICKS_PER_SECOND // 1000

OPERATORS = ("Equals", "NotEquals", "In", "NotIn")
OPERANDS = ("PipelineName", "Status", "RunGroupId", "LatestOnly", "RunStart", "RunEnd")
# the spec's RunQueryOrderByField values for pipeline runs: LastUpdated is not one of them
ORDER_FIELDS = ("RunStart", "RunEnd", "PipelineName", "Status")
# ADF's own words (azure-sdk-for-net issue #22025), typo included
RUN_GROUP_SINGLE = (
    "Filter operand 'RunGroupId' does not support and array of values. "
    "Make sure to provide only one."
)


@dataclass(frozen=True, slots=True)
class View:
    """A run as seen at one instant."""

    run: Run
    status: str
    last_updated: int
    run_end: int | None
    is_latest: bool

    def field(self, name: str) -> str | int | None:
        if name == "RunStart":
            return self.run.start_at
        if name == "RunEnd":
            return self.run_end
        if name == "PipelineName":
            return self.run.pipeline_name.casefold()
        return self.status  # Status


def view(runs: FactoryRuns, run: Run, now: int) -> View:
    status, last_updated, run_end = run.state(now)
    return View(run, status, last_updated, run_end, runs.is_latest(run, now))


def render(item: View) -> dict[str, Any]:
    run = item.run
    duration = None
    if item.run_end is not None:
        duration = (item.run_end - run.start_at) // TICKS_PER_MS
    return {
        "runId": run.run_id,
        "runGroupId": run.group_id,
        "isLatest": item.is_latest,
        "pipelineName": run.pipeline_name,
        "parameters": run.wire_parameters,
        # the name ADF answers with (the reference's query example), not the swagger's plural
        "runDimension": {},
        "invokedBy": {
            "name": run.invoked_by_type,
            "id": run.invoked_by,
            "invokedByType": run.invoked_by_type,
        },
        "lastUpdated": format_time(item.last_updated),
        "runStart": format_time(run.start_at),
        "runEnd": None if item.run_end is None else format_time(item.run_end),
        "durationInMs": duration,
        "status": item.status,
        "message": run.message,
    }


Predicate = Callable[[View], bool]


def _values(raw: dict[str, Any], where: str) -> list[str]:
    values = raw.get("values")
    if not isinstance(values, list) or not values:
        raise bad_request(f"{where}.values must be a non-empty list of strings.", target=where)
    found: list[str] = []
    for value in values:
        if isinstance(value, bool):  # LatestOnly is often sent as [true]
            found.append(str(value).lower())
        elif isinstance(value, str):
            found.append(value)
        else:
            raise bad_request(f"{where}.values must hold strings, not {value!r}.", target=where)
    return found


def _predicate(
    raw: object, index: int, *, single_run_group: bool = False
) -> tuple[Predicate | None, list[str] | None]:
    """A filter as a predicate, plus the pipeline names it restricts to (for the index)."""
    where = f"filters[{index}]"
    if not isinstance(raw, dict):
        raise bad_request(f"{where} must be an object with operand, operator and values.")
    operand, operator = raw.get("operand"), raw.get("operator")
    if operand not in OPERANDS:
        raise bad_request(
            f"{where}.operand '{operand}' is not supported for pipeline runs "
            f"(use one of {', '.join(OPERANDS)}).",
            target=f"{where}.operand",
        )
    if operator not in OPERATORS:
        raise bad_request(
            f"{where}.operator '{operator}' is not supported (use one of {', '.join(OPERATORS)}).",
            target=f"{where}.operator",
        )
    values = _values(raw, where)
    if operand == "RunGroupId" and single_run_group and len(values) > 1:
        raise bad_request(RUN_GROUP_SINGLE, target=f"{where}.values")
    negate = operator in ("NotEquals", "NotIn")
    if operand == "LatestOnly":
        if values[0] not in ("true", "false"):
            raise bad_request(f"{where}: LatestOnly takes 'true' or 'false'.", target=where)
        if (values[0] == "true") != negate:
            return (lambda v: v.is_latest), None
        return None, None
    get: Callable[[View], str | int | None]
    wanted: set[str] | set[int]
    if operand == "RunStart":
        wanted = {parse_time(value, field=f"{where}.values") for value in values}

        def get(v: View) -> int | None:
            return v.run.start_at
    elif operand == "RunEnd":
        wanted = {parse_time(value, field=f"{where}.values") for value in values}

        def get(v: View) -> int | None:
            return v.run_end
    elif operand == "Status":
        wanted = {value.casefold() for value in values}
        unknown = wanted - {status.casefold() for status in STATUSES}
        if unknown:
            raise bad_request(
                f"{where}: unknown status {', '.join(sorted(unknown))} "
                f"(pipeline runs are {', '.join(STATUSES)}).",
                target=where,
            )

        def get(v: View) -> str:
            return v.status.casefold()
    elif operand == "PipelineName":
        wanted = {value.casefold() for value in values}

        def get(v: View) -> str:
            return v.run.pipeline_name.casefold()
    else:  # RunGroupId
        wanted = {value.lower() for value in values}

        def get(v: View) -> str:
            return v.run.group_id.lower()

    def predicate(v: View) -> bool:
        return (get(v) in wanted) != negate

    restrict = values if operand == "PipelineName" and not negate else None
    return predicate, restrict


def _order(raw: object) -> list[tuple[str, bool]]:
    """[(field, descending)], with RunStart ascending when none is given."""
    if raw is None:
        return [("RunStart", False)]
    if not isinstance(raw, list):
        raise bad_request("orderBy must be a list of {orderBy, order}.", target="orderBy")
    order: list[tuple[str, bool]] = []
    for index, item in enumerate(raw):
        where = f"orderBy[{index}]"
        if not isinstance(item, dict) or item.get("orderBy") not in ORDER_FIELDS:
            raise bad_request(
                f"{where}.orderBy must be one of {', '.join(ORDER_FIELDS)}.", target=where
            )
        if item.get("order") not in ("ASC", "DESC"):
            raise bad_request(f"{where}.order must be ASC or DESC.", target=where)
        order.append((item["orderBy"], item["order"] == "DESC"))
    return order or [("RunStart", False)]


def _encode_token(key: list[Any], order: list[tuple[str, bool]]) -> str:
    payload = json.dumps({"after": key, "order": order}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_token(token: object, order: list[tuple[str, bool]]) -> list[Any]:
    if not isinstance(token, str):
        raise bad_request("continuationToken must be a string.", target="continuationToken")
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after, token_order = payload["after"], payload["order"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise bad_request(
            "continuationToken is not one this service issued.", target="continuationToken"
        ) from None
    if not isinstance(token_order, list) or [tuple(i) for i in token_order] != order:
        raise bad_request(
            "continuationToken belongs to a query with a different orderBy.",
            target="continuationToken",
        )
    kinds = [str if name in ("PipelineName", "Status") else int for name, _ in order] + [int]
    if not isinstance(after, list) or len(after) != len(kinds):
        raise bad_request("continuationToken is damaged.", target="continuationToken")
    for value, kind in zip(after, kinds, strict=True):
        if not (value is None or (isinstance(value, kind) and not isinstance(value, bool))):
            raise bad_request("continuationToken is damaged.", target="continuationToken")
    return after


def _sort_key(item: View, order: list[tuple[str, bool]]) -> list[Any]:
    return [item.field(name) for name, _ in order] + [item.run.seq]


def _after(key: list[Any], mark: list[Any], order: list[tuple[str, bool]]) -> bool:
    """Whether ``key`` sorts strictly after ``mark``; None sorts after every value."""
    directions = [desc for _, desc in order] + [False]
    for mine, theirs, desc in zip(key, mark, directions, strict=True):
        if mine == theirs:
            continue
        if mine is None or theirs is None:
            return (mine is None) != desc
        return bool(mine > theirs) != desc
    return False


def _sorted(items: list[View], name: str, desc: bool) -> list[View]:
    """A stable sort on one field; runs without a value (no runEnd yet) sort after the rest."""
    present = [v for v in items if v.field(name) is not None]
    missing = [v for v in items if v.field(name) is None]
    present.sort(key=lambda v: v.field(name), reverse=desc)  # type: ignore[arg-type,return-value]
    return missing + present if desc else present + missing


def query(
    runs: FactoryRuns | None, body: object, now: int, *, single_run_group: bool = False
) -> dict[str, Any]:
    """One page of runs; ``single_run_group`` refuses a RunGroupId filter of several values."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a RunFilterParameters JSON object.")
    after = parse_time(body.get("lastUpdatedAfter"), field="lastUpdatedAfter")
    before = parse_time(body.get("lastUpdatedBefore"), field="lastUpdatedBefore")
    filters = body.get("filters") or []
    if not isinstance(filters, list):
        raise bad_request("filters must be a list of RunQueryFilter.", target="filters")
    predicates: list[Predicate] = []
    pipelines: set[str] | None = None
    for index, raw in enumerate(filters):
        predicate, restrict = _predicate(raw, index, single_run_group=single_run_group)
        if predicate is not None:
            predicates.append(predicate)
        if restrict is not None:
            names = {name.casefold() for name in restrict}
            pipelines = names if pipelines is None else pipelines & names
    order = _order(body.get("orderBy"))
    token = body.get("continuationToken")
    mark = _decode_token(token, order) if token is not None else None
    if runs is None:
        return {"value": []}

    matched: list[View] = []
    for run in runs.candidates(pipelines):
        if run.visible_at > now:
            continue
        item = view(runs, run, now)
        if after <= item.last_updated <= before and all(p(item) for p in predicates):
            matched.append(item)

    matched.sort(key=lambda v: v.run.seq)
    for name, desc in reversed(order):
        matched = _sorted(matched, name, desc)
    if mark is not None:
        matched = [v for v in matched if _after(_sort_key(v, order), mark, order)]
    page = matched[:PAGE_SIZE]
    result: dict[str, Any] = {"value": [render(item) for item in page]}
    if len(matched) > PAGE_SIZE:
        result["continuationToken"] = _encode_token(_sort_key(page[-1], order), order)
    return result
