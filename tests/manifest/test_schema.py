"""The JSON Schema and the loader agree on the whole manifest corpus."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
import yaml

from batchrun.manifest.schema import PACKAGED, render
from tests.helpers.paths import DATA, ROOT

if TYPE_CHECKING:
    from pathlib import Path

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
    "parameter-date.yaml": "editors read YAML dates as strings",
    "parameter-nested-timestamp.yaml": "editors read YAML dates as strings",
    "parameter-nan.yaml": "JSON Schema numbers include .nan once loaded",
    "parameter-binary.yaml": "!!binary loads as bytes, which a schema does not type",
    "parameter-name-not-a-string.yaml": "editors read every mapping key as a string",
    "recursive-alias.yaml": "a recursive alias loads as a cycle that a schema cannot see",
    "parameter-nested-default.yaml": "${...} syntax is checked when substituting",
    "parameters-nested-too-deep.yaml": "free-form parameters: a schema does not count levels",
    "parameter-alias-bomb.yaml": "a schema sees the expanded values, not how many they are",
    "parameter-set-tag.yaml": "!!set loads as a set, which a schema does not type",
    "parameter-integer-too-big.yaml": "editors read numbers as doubles: 64-bit bounds blur",
    "needs-unknown-id.yaml": "ids are only known after expansion",
    "needs-cycle.yaml": "needs are resolved over the ids after expansion",
    "dates-to-before-from.yaml": "a schema does not compare two dates",
    # The YAML 1.1 readings: an editor reads these as YAML 1.2 does, where each is a fine JSON
    # value; batchrun would send something else, so the loader alone can say so.
    **dict.fromkeys(
        (
            "parameter-yaml11-boolean-word.yaml",
            "parameter-yaml11-on.yaml",
            "parameter-yaml11-y.yaml",
            "parameter-leading-zero-octal.yaml",
            "parameter-leading-zero-decimal.yaml",
            "parameter-sexagesimal.yaml",
            "parameter-float-trailing-zero.yaml",
            "parameter-float-loses-digits.yaml",
            "parameter-hex.yaml",
            "parameter-binary-number.yaml",
            "parameter-underscore-number.yaml",
            "parameter-number-only-yaml12-reads.yaml",
            "version-leading-zero.yaml",
        ),
        "YAML 1.2 reads a valid value where YAML 1.1 reads another",
    ),
}
UNPARSABLE = {
    "syntax-error.yaml", "tab-indent.yaml", "two-documents.yaml", "undefined-alias.yaml",
    "empty.yaml", "parameter-python-tag.yaml",
}  # fmt: skip


class Yaml12Loader(yaml.SafeLoader):
    """Reads YAML as editors do (YAML 1.2's core schema), to apply the schema as they do."""


Yaml12Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in [
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    (
        "float",
        r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        "-+.0123456789",
    ),
    ("merge", r"<<", "<"),
]:
    Yaml12Loader.add_implicit_resolver(
        f"tag:yaml.org,2002:{_tag}", re.compile(f"^(?:{_pattern})$"), list(_first)
    )
Yaml12Loader.add_constructor(
    "tag:yaml.org,2002:int",
    lambda loader, node: int(node.value, 0 if node.value[:2] in ("0o", "0x") else 10),
)


def load(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=Yaml12Loader)


def test_the_agreement_is_checked_on_what_editors_read() -> None:
    text = "a: NO\nb: 017\nc: 12:30\nd: 1e3\ne: 0o17\nf: 2026-11-26\ng: ~\nh: True\n"
    assert yaml.load(text, Loader=Yaml12Loader) == {
        "a": "NO", "b": 17, "c": "12:30", "d": 1000.0, "e": 15, "f": "2026-11-26", "g": None,
        "h": True,
    }  # fmt: skip


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
        "the schema accepts a manifest the loader rejects: add a rule to manifest/schema.py"
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
