"""The JSON Schema of manifest v1, built from the loader's own rules (one source of truth).

Editors validate manifests with it as you type (``# yaml-language-server: $schema=…``). It
says what a schema can say about one document; the loader also checks what needs the whole file
(ids unique after expansion, ``${VAR}`` set, duplicate keys, ``defaults`` merged into each run).
``python -m batchrun.manifest.schema`` rewrites the shipped copies; a test keeps them in step.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchrun.manifest.dates import DEFAULT_MAX
from batchrun.manifest.rules import (
    CONTROL,
    DOT_SEGMENTS,
    ENTRY_FIELDS,
    FIELDS,
    NAME_RULES,
    PATH_UNSAFE,
    REQUIRED,
)

if TYPE_CHECKING:
    from collections.abc import Callable

SCHEMA_ID = "https://github.com/batchrun/batchrun/schema/manifest-v1.json"
PACKAGED = Path(__file__).parents[1] / "schema" / "manifest-v1.json"
# a value taken from the environment is only known when the manifest is loaded
_SUBSTITUTED = {"type": "string", "pattern": r"\$\{"}
# what datetime.fromisoformat reads without a zone: a date, or a date and a time
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}(?::[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?)?$"


def _dates() -> dict[str, Any]:
    date = {"anyOf": [{"type": "string", "pattern": _DATE}, _SUBSTITUTED]}
    text = {"type": "string", "minLength": 1}
    return {
        "type": "object",
        "description": "one run per date from 'from' to 'to' (included), id <id>.<date>",
        "additionalProperties": False,
        "required": ["from", "to", "parameter"],
        "properties": {
            "from": {**date, "description": "the first date (YYYY-MM-DD or YYYY-MM-DDTHH:MM)"},
            "to": {**date, "description": "the last date, included"},
            "step": {
                "anyOf": [{"type": "string", "pattern": "^[1-9][0-9]{0,5}[dh]$"}, _SUBSTITUTED],
                "description": "days (1d) or hours (6h) between dates; default 1d",
            },
            "parameter": {**text, "description": "the pipeline parameter that gets each date"},
            "format": {**text, "description": "strftime format of the date; ISO by default"},
            "max": {
                "type": "integer",
                "minimum": 1,
                "description": f"at most this many dates (default {DEFAULT_MAX})",
            },
        },
    }


def _name(field: str) -> dict[str, Any]:
    pattern, lengths, rule = NAME_RULES[field]
    exact = {
        "type": "string",
        "minLength": lengths.start,
        "maxLength": lengths.stop - 1,
        "pattern": f"^(?:{pattern.pattern})$",
    }
    return {"description": rule, "anyOf": [exact, _SUBSTITUTED]}


def _one_or_many(field: str) -> dict[str, Any]:
    single = {"$ref": f"#/$defs/{field}"}
    many = {"type": "array", "minItems": 1, "uniqueItems": True, "items": single}
    return {"anyOf": [single, many]}


def _fields() -> dict[str, Any]:
    string = {"type": "string", "minLength": 1}
    name = {**string, "pattern": f"^[^{CONTROL.pattern[1:-1]}]+$"}
    properties: dict[str, Any] = {
        "id": {**string, "description": "unique run id (derived from factory.pipeline if absent)"},
        "subscription": {
            "type": "string",
            "minLength": 1,
            "pattern": f"^[^{PATH_UNSAFE.pattern[1:-1]}]+$",
            "not": {"enum": sorted(DOT_SEGMENTS)},
            "description": "subscription id (a GUID)",
        },
        "resource_group": {"$ref": "#/$defs/resource_group"},
        "factory": _one_or_many("factory"),
        "pipeline": _one_or_many("pipeline"),
        "parameters": {
            "type": "object",
            "description": "pipeline parameters: JSON values (quote dates)",
        },
        "reference_run_id": {**name, "description": "the run to rerun"},
        "is_recovery": {"type": "boolean", "description": "join the reference run's group"},
        "start_from_failure": {"type": "boolean", "description": "rerun from failed activities"},
        "start_activity_name": {**name, "description": "rerun from this activity"},
        "needs": {
            "description": "run ids (after expansion) or globs (load.*) this run waits for",
            "anyOf": [string, {"type": "array", "items": string}],
        },
        "dates": _dates(),
    }
    assert set(properties) == set(FIELDS + ENTRY_FIELDS), "the schema must name the loader's fields"
    return properties


Schema = dict[str, Any] | bool


def _present(field: str, value: Any = None) -> dict[str, Any]:
    """The object has ``field`` (set to ``value``, when given)."""
    if value is None:
        return {"required": [field]}
    return {"required": [field], "properties": {field: {"const": value}}}


def _effective(field: str, *, from_defaults: bool) -> Schema:
    """A run's own ``field: true``, or true from defaults and not set false by the run."""
    if field in ("start_activity_name", "reference_run_id"):
        return True if from_defaults else _present(field)
    return {"not": _present(field, False)} if from_defaults else _present(field, True)


def _implies(condition: Schema, then: Schema) -> Schema:
    if condition is False or then is True:
        return True
    return then if condition is True else {"if": condition, "then": then}


def _any(*schemas: Schema) -> Schema:
    if True in schemas:
        return True
    rest = [schema for schema in schemas if schema is not False]
    return {"anyOf": rest} if len(rest) > 1 else rest[0] if rest else False


def _all(*schemas: Schema) -> Schema:
    if False in schemas:
        return False
    rest = [schema for schema in schemas if schema is not True]
    return {"allOf": rest} if len(rest) > 1 else rest[0] if rest else True


def _recovery_rules() -> list[dict[str, Any]]:
    """The loader's recovery rules, on each run's fields merged over the defaults.

    A rule over defaults and runs at once: for each way the defaults can set the fields it
    reads, what every run must then hold.
    """
    rules: list[tuple[tuple[str, ...], Callable[..., Schema]]] = [
        (
            ("start_from_failure", "start_activity_name", "is_recovery"),
            lambda s, a, r: _implies(_any(s, a), r),
        ),
        (("is_recovery", "reference_run_id"), lambda r, f: _implies(r, f)),
        (
            ("start_activity_name", "start_from_failure"),
            lambda a, s: _implies(_all(a, s), False),
        ),
    ]
    branches: list[dict[str, Any]] = []
    for fields, rule in rules:
        for in_defaults in itertools.product((False, True), repeat=len(fields)):
            per_run = rule(
                *(_effective(f, from_defaults=d) for f, d in zip(fields, in_defaults, strict=True))
            )
            if per_run is True:
                continue
            conditions = []
            for field, set_there in zip(fields, in_defaults, strict=True):
                value = None if field in ("start_activity_name", "reference_run_id") else True
                has = {"required": ["defaults"], "properties": {"defaults": _present(field, value)}}
                conditions.append(has if set_there else {"not": has})
            branches.append(
                {
                    "if": {"allOf": conditions},
                    "then": {"properties": {"runs": {"items": per_run}}},
                }
            )
    return branches


def manifest_schema() -> dict[str, Any]:
    fields = _fields()
    # a required field missing from defaults must be in every run
    required_somewhere = [
        {
            "if": {
                "not": {"required": ["defaults"], "properties": {"defaults": {"required": [f]}}}
            },
            "then": {"properties": {"runs": {"items": {"required": [f]}}}},
        }
        for f in sorted(REQUIRED)
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "batchrun manifest v1",
        "description": "Azure Data Factory pipeline runs for `batchrun run`.",
        "type": "object",
        "required": ["version", "runs"],
        "additionalProperties": False,
        "properties": {
            "version": {"const": 1},
            "defaults": {
                "type": "object",
                "additionalProperties": False,
                "properties": {k: v for k, v in fields.items() if k not in ("id", "needs")},
            },
            "runs": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/run"}},
        },
        "allOf": required_somewhere + _recovery_rules(),
        "$defs": {
            "factory": _name("factory"),
            "pipeline": _name("pipeline"),
            "resource_group": _name("resource_group"),
            "run": {
                "type": "object",
                "additionalProperties": False,
                "properties": fields,
            },
        },
    }


def render() -> str:
    return json.dumps(manifest_schema(), indent=2) + "\n"


def main() -> int:
    targets = [PACKAGED, Path("configs/manifest-v1.schema.json")]
    for target in targets:
        target.write_text(render(), encoding="utf-8")
        print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
