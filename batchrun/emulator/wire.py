"""The ADF/ARM wire format: names, times, parameter values and CloudError answers."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

API_VERSION = "2018-06-01"

# From the OpenAPI subset's #/parameters (decoded regexes, lengths inclusive).
NAME_RULES: dict[str, tuple[re.Pattern[str], int, int]] = {
    "resourceGroupName": (re.compile(r"^[-\w\._\(\)]+$"), 1, 90),
    "factoryName": (re.compile(r"^[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*$"), 3, 63),
    "pipelineName": (re.compile(r"^[A-Za-z0-9_][^<>*#.%&:\\+?/]*$"), 1, 260),
}

TICKS_PER_SECOND = 10_000_000


class ArmError(Exception):
    """An error answer: HTTP status plus a CloudError body (and extra headers, e.g. Retry-After)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target is not None:
            error["target"] = self.target
        error["details"] = []
        return {"error": error}


def bad_request(message: str, *, target: str | None = None, code: str = "BadRequest") -> ArmError:
    return ArmError(400, code, message, target=target)


def check_name(kind: str, value: str) -> None:
    """Raise a 400 when ``value`` breaks the spec's pattern or length for ``kind``."""
    pattern, shortest, longest = NAME_RULES[kind]
    if not shortest <= len(value) <= longest or pattern.match(value) is None:
        raise bad_request(
            f"The {kind} '{value}' is invalid: it must be {shortest}-{longest} characters "
            f"matching {pattern.pattern}.",
            target=kind,
        )


def to_ticks(epoch: float) -> int:
    """Seconds since the epoch to ticks (100 ns), the unit every stored time uses."""
    return round(epoch * TICKS_PER_SECOND)


def format_time(ticks: int) -> str:
    """ADF's timestamp form: UTC, seven fractional digits, ``Z`` (2018-06-16T00:37:44.6257014Z)."""
    seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{fraction:07d}Z"


_FRACTION = re.compile(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$")


def parse_time(value: object, *, field: str) -> int:
    """An ISO 8601 timestamp to ticks; a time without an offset is taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"'{field}' must be an ISO 8601 date-time string.", target=field)
    match = _FRACTION.match(value.strip())
    try:
        if match is None:
            raise ValueError(value)
        parsed = datetime.fromisoformat(match[1] + match[3])
    except ValueError:
        raise bad_request(
            f"'{field}' is not an ISO 8601 date-time: '{value}' "
            "(expected e.g. 2018-06-16T00:36:44.3345758Z).",
            target=field,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    fraction = int((match[2] or "0")[:7].ljust(7, "0"))
    return int(parsed.timestamp()) * TICKS_PER_SECOND + fraction


def parse_bool(value: str | None, *, field: str) -> bool | None:
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise bad_request(
        f"The query parameter '{field}' has the value '{value}', which is not a boolean "
        "(use true or false).",
        target=field,
    )


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def wire_parameters(parameters: dict[str, Any]) -> dict[str, str]:
    """Parameter values as a PipelineRun reports them: strings stay, the rest JSON-encoded."""
    return {
        name: value
        if isinstance(value, str)
        else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        for name, value in parameters.items()
    }
