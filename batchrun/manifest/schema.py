"""The JSON Schema of manifest v1, built from the loader's own rules (one source of truth).

Editors validate manifests with it as you type (``# yaml-language-server: $schema=…``). It
says what a schema can say about one document; the loader also checks what needs the whole file
(ids unique after expansion, ``${VAR}`` set, duplicate keys, ``defaults`` merged into each run).
``python -m batchrun.manifest.schema`` rewrites the shipped copies; a test keeps them in step.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from batchrun.manifest.rules import FIELDS, NAME_RULES, PATH_UNSAFE, REQUIRED

SCHEMA_ID = "https://github.com/batchrun/batchrun/schema/manifest-v1.json"
PACKAGED = Path(__file__).parents[1] / "schema" / "manifest-v1.json"
# a value taken from the environment is only known when the manifest is loaded
_SUBSTITUTED = {"type": "string", "pattern": r"\$\{"}


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
    properties: dict[str, Any] = {
        "id": {**string, "description": "unique run id (derived from factory.pipeline if absent)"},
        "subscription": {
            "type": "string",
            "minLength": 1,
            "pattern": f"^[^{PATH_UNSAFE.pattern.strip('[]')}]+$",
            "description": "subscription id (a GUID)",
        },
        "resource_group": {"$ref": "#/$defs/resource_group"},
        "factory": _one_or_many("factory"),
        "pipeline": _one_or_many("pipeline"),
        "parameters": {
            "type": "object",
            "description": "pipeline parameters: JSON values (quote dates)",
        },
        "reference_run_id": {**string, "description": "the run to rerun"},
        "is_recovery": {"type": "boolean", "description": "join the reference run's group"},
        "start_from_failure": {"type": "boolean", "description": "rerun from failed activities"},
        "start_activity_name": {**string, "description": "rerun from this activity"},
    }
    assert set(properties) == set(FIELDS), "the schema must name exactly the loader's fields"
    return properties


def manifest_schema() -> dict[str, Any]:
    fields = _fields()
    recovery_rules = [
        {
            "if": {"required": ["start_activity_name"]},
            "then": {
                "not": {
                    "properties": {"start_from_failure": {"const": True}},
                    "required": ["start_from_failure"],
                }
            },
        },
        {
            "if": {"properties": {"is_recovery": {"const": True}}, "required": ["is_recovery"]},
            "then": {"required": ["reference_run_id"]},
        },
    ]
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
                "properties": {k: v for k, v in fields.items() if k != "id"},
            },
            "runs": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/run"}},
        },
        "allOf": required_somewhere,
        "$defs": {
            "factory": _name("factory"),
            "pipeline": _name("pipeline"),
            "resource_group": _name("resource_group"),
            "run": {
                "type": "object",
                "additionalProperties": False,
                "properties": fields,
                "allOf": recovery_rules,
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
