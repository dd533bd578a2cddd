"""The JSON Schema and the loader agree on the whole manifest corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from batchrun.manifest.schema import PACKAGED, render
from tests.helpers.paths import DATA, ROOT

CORPUS = DATA / "manifests"
VALIDATOR = jsonschema.Draft202012Validator(json.loads(render()))

# What a schema cannot see in one document: the loader alone rejects these.
LOADER_ONLY = {
    "duplicate-ids.yaml": "ids must be unique across runs",
    "duplicate-ids-after-expansion.yaml": "ids are only known after matrix expansion",
    "id-equals-a-derived-id.yaml": "derived ids are only known after expansion",
    "duplicate-key.yaml": "YAML loaders keep the last of duplicate keys",
    "duplicate-parameter-key.yaml": "YAML loaders keep the last of duplicate keys",
    "unset-variable.yaml": "the environment is only known when the manifest is loaded",
    "invalid-substitution.yaml": "${...} syntax is checked when substituting",
    "recovery-from-defaults-without-reference.yaml": "needs defaults merged into each run",
    "start-activity-without-recovery.yaml": "is_recovery may come from defaults",
    "start-from-failure-without-recovery.yaml": "is_recovery may come from defaults",
    "parameter-date.yaml": "editors read YAML dates as strings",
    "parameter-nested-timestamp.yaml": "editors read YAML dates as strings",
    "parameter-nan.yaml": "JSON Schema numbers include .nan once loaded",
    "parameter-binary.yaml": "!!binary loads as bytes, which a schema does not type",
    "parameter-name-not-a-string.yaml": "editors read every mapping key as a string",
    "recursive-alias.yaml": "a recursive alias loads as a cycle that a schema cannot see",
}
UNPARSABLE = {
    "syntax-error.yaml", "tab-indent.yaml", "two-documents.yaml", "undefined-alias.yaml",
    "empty.yaml",
}  # fmt: skip


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_shipped_schemas_are_generated_from_the_loader_rules() -> None:
    assert PACKAGED.read_text(encoding="utf-8") == render()
    assert (ROOT / "configs" / "manifest-v1.schema.json").read_text(encoding="utf-8") == render()


@pytest.mark.parametrize("path", sorted(CORPUS.glob("good/*.yaml")), ids=lambda p: p.name)
def test_good_manifests_are_valid(path: Path) -> None:
    errors = [error.message for error in VALIDATOR.iter_errors(load(path))]
    assert errors == []


@pytest.mark.parametrize("path", sorted(CORPUS.glob("bad/*.yaml")), ids=lambda p: p.name)
def test_bad_manifests_are_invalid_or_known_to_need_the_loader(path: Path) -> None:
    if path.name in UNPARSABLE:
        with pytest.raises(yaml.YAMLError):
            document = load(path)
            if document is None:
                raise yaml.YAMLError("empty")
        return
    valid = VALIDATOR.is_valid(load(path))
    assert valid is (path.name in LOADER_ONLY), (
        "the schema accepts a manifest the loader rejects: add a rule to batchrun/schema_gen.py"
        if valid
        else "the schema now catches this one: remove it from LOADER_ONLY"
    )


def test_example_manifests_point_editors_at_the_schema() -> None:
    examples = [p for p in sorted((ROOT / "configs").glob("*.yaml")) if "runs" in (load(p) or {})]
    assert examples
    for example in examples:
        first = example.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), example
        target = (example.parent / first.split("=", 1)[1]).resolve()
        assert target.exists(), first
