"""Scope files are read by the manifest's node reader: same YAML rules, their own error type."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from batchrun.errors import ManifestError, PositionedError, ScopeError
from batchrun.manifest.scope import load_scope
from batchrun.model import FactoryRef

if TYPE_CHECKING:
    from pathlib import Path

    from tests.manifest.conftest import Issues, IssuesOf

SUB = "11111111-1111-1111-1111-111111111111"


@pytest.fixture
def scope_issues(issues_of: IssuesOf) -> Issues:
    return lambda text: issues_of(text, read=load_scope, error=ScopeError, name="scope.yaml")


def test_a_scope_error_is_not_a_manifest_error_but_both_carry_positions() -> None:
    assert not issubclass(ScopeError, ManifestError)
    assert issubclass(ScopeError, PositionedError)


def test_a_missing_scope_file_is_a_scope_error(tmp_path: Path) -> None:
    with pytest.raises(ScopeError, match="cannot read the scope file"):
        load_scope(tmp_path / "nope.yaml", environ={})


def test_a_manifest_used_as_the_scope_reports_manifest_errors(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("version: 1\nruns:\n  - {factory: fac}\n")
    with pytest.raises(ManifestError) as caught:
        load_scope(path, environ={})
    assert not isinstance(caught.value, ScopeError)


def test_merge_keys_work_in_scope_files_as_in_manifests(tmp_path: Path) -> None:
    path = tmp_path / "scope.yaml"
    path.write_text(
        f"version: 1\nfactories:\n  - &base {{subscription: {SUB}, resource_group: rg,"
        " factory: one}\n  - {<<: *base, factory: two}\n"
    )
    scope = load_scope(path, environ={})
    assert scope.factories == (FactoryRef(SUB, "rg", "one"), FactoryRef(SUB, "rg", "two"))


def test_duplicate_keys_name_the_first_position(tmp_path: Path, scope_issues: Issues) -> None:
    found = scope_issues(
        f"version: 1\nfactories:\n  - {{subscription: {SUB}, subscription: x,"
        " resource_group: rg, factory: fac}\n",
    )
    assert found == [
        "3:58: factories[0].subscription: duplicate key 'subscription' (first at line 3,"
        " column 6): YAML would keep only the last one"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("!!set {a}", "3:87: unsupported tag !!set: a manifest holds text"),
        ("!!python/str fac", "3:87: unsupported tag !!python/str"),
        ("1e3", "3:87: factories[0].factory: batchrun's YAML 1.1 reads 1e3 as text but YAML 1.2"),
        ("on", "3:87: factories[0].factory: expected a factory name, got the boolean on; quote"),
        ("[" * 200 + "]" * 200, "lists and mappings nested more than 100 deep"),
    ],
)
def test_a_scope_file_takes_values_by_the_manifest_rules(
    scope_issues: Issues, value: str, expected: str
) -> None:
    text = f"version: 1\nfactories:\n  - {{subscription: {SUB}, resource_group: rg, factory: "
    [issue] = scope_issues(text + value + "}\n")
    assert expected in issue


def test_a_substitution_error_in_a_scope_file_is_at_the_value(
    scope_issues: Issues,
) -> None:
    text = f"version: 1\nfactories:\n  - {{subscription: {SUB}, resource_group: rg, factory: "
    [issue] = scope_issues(text + "'${A:-${B}}'}\n")
    assert issue == (
        "3:87: factories[0].factory: nested ${...} in a default is not supported: set A, or"
        " give a literal default (${A:-text})"
    )
