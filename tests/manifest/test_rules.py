"""Names become URL path segments: manifests and scope files refuse the same unsafe ones (12.18)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from batchrun.errors import ManifestError, ScopeError
from batchrun.manifest.loader import load_manifest
from batchrun.manifest.rules import name_problem, subscription_problem
from batchrun.manifest.scope import load_scope

if TYPE_CHECKING:
    from pathlib import Path

SUB = "11111111-1111-1111-1111-111111111111"
GOOD = {"subscription": SUB, "resource_group": "rg", "factory": "fac", "pipeline": "P"}
UNSAFE = [
    ("subscription", "."), ("subscription", ".."), ("subscription", "a\\x00b"),
    ("subscription", "a\\nb"), ("subscription", "a\\x7fb"), ("subscription", "a\\u2028b"),
    ("resource_group", "."), ("resource_group", ".."), ("resource_group", "rg."),
    ("resource_group", "rg\\x00"), ("resource_group", "rg\\n"), ("resource_group", "rg\\x1b"),
    ("factory", "fac\\x00"), ("factory", "fac\\n"), ("pipeline", "Load\\x00"),
    ("pipeline", "Load\\nOrders"), ("pipeline", "Load\\tOrders"), ("pipeline", "Load\\x85"),
    ("pipeline", "Load\\u2029"),
]  # fmt: skip


def entry(field: str, value: str, *, fields: tuple[str, ...] = tuple(GOOD)) -> str:
    values = {key: GOOD[key] for key in fields} | {field: f'"{value}"'}
    return "{" + ", ".join(f"{key}: {text}" for key, text in values.items()) + "}"


@pytest.mark.parametrize(("field", "value"), UNSAFE)
def test_a_manifest_refuses_an_unsafe_name_where_it_is(
    tmp_path: Path, field: str, value: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(f"version: 1\nruns:\n  - {entry(field, value)}\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, environ={})
    [issue] = caught.value.issues
    assert (issue.line, issue.path) == (3, f"runs[0].{field}")
    assert issue.column == 5 + entry(field, value).index(f'"{value}"')


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, v in UNSAFE if f != "pipeline"])
def test_a_scope_file_refuses_the_same_names(tmp_path: Path, field: str, value: str) -> None:
    path = tmp_path / "scope.yaml"
    scoped = entry(field, value, fields=("subscription", "resource_group", "factory"))
    path.write_text(f"version: 1\nfactories:\n  - {scoped}\n")
    with pytest.raises(ScopeError) as caught:
        load_scope(path, environ={})
    [issue] = caught.value.issues
    assert (issue.line, issue.path) == (3, f"factories[0].{field}")
    manifest = tmp_path / "m.yaml"
    manifest.write_text(f"version: 1\nruns:\n  - {entry(field, value)}\n")
    with pytest.raises(ManifestError) as by_manifest:
        load_manifest(manifest, environ={})
    assert [i.message for i in by_manifest.value.issues] == [issue.message]


@pytest.mark.parametrize("value", ["sub", SUB, "a.b", "..a", "a..", "...x"])
def test_dots_inside_a_subscription_are_fine(value: str) -> None:
    assert subscription_problem(value) is None


@pytest.mark.parametrize("value", ["rg", "rg.data", "(rg)", ".rg", "a..b", "ünï"])
def test_a_resource_group_may_hold_dots_but_not_end_with_one(value: str) -> None:
    assert name_problem("resource_group", value) is None


def test_run_and_activity_names_refuse_control_characters_but_an_id_is_ours(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        f"version: 1\nruns:\n  - {entry('pipeline', 'P')}\n"
        '  - {id: "tab\\there", reference_run_id: "r\\n1", is_recovery: true,'
        f' start_activity_name: "Copy\\x00", subscription: {SUB}, resource_group: rg,'
        " factory: fac, pipeline: Q}\n"
    )
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, environ={})
    assert [(issue.path, issue.message) for issue in caught.value.issues] == [
        ("runs[1].reference_run_id", "'r\\n1' holds a control character: remove it"),
        ("runs[1].start_activity_name", "'Copy\\x00' holds a control character: remove it"),
    ]
