"""The loader's rarer paths, each as one manifest: what is said, and that nothing else is (the
common cases are the table in tests/data/manifests/bad/expected.json)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from batchrun.errors import ManifestError
from batchrun.manifest.loader import load_manifest

if TYPE_CHECKING:
    from pathlib import Path

SUB = "11111111-1111-1111-1111-111111111111"
REFERENCE = "2f7fdb90-5df1-4b8e-ac2f-064cfa58202b"


def issues(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, environ={})
    return [f"{i.line}:{i.column}: {i.path}: {i.message}" for i in caught.value.issues]


def test_an_empty_manifest_says_what_it_should_start_with(tmp_path: Path) -> None:
    assert issues(tmp_path, "") == ["1:1: : the manifest is empty: expected 'version: 1'"]


def test_bad_default_parameters_are_reported_once_not_merged_into_each_run(
    tmp_path: Path,
) -> None:
    found = issues(
        tmp_path,
        f"version: 1\ndefaults: {{subscription: {SUB}, resource_group: rg, parameters: [1]}}\n"
        "runs:\n  - {factory: f-a, pipeline: P, parameters: {a: 1}}\n",
    )
    assert len(found) == 1
    assert found[0].startswith("2:") and "defaults.parameters" in found[0]


def test_a_misspelt_default_is_not_also_reported_missing(tmp_path: Path) -> None:
    found = issues(
        tmp_path,
        f"version: 1\ndefaults: {{subscription: {SUB}, resource_group: rg, factroy: f-a}}\n"
        "runs:\n  - {pipeline: P}\n",
    )
    assert len(found) == 1
    assert "did you mean 'factory'" in found[0]


def test_parameters_of_a_rerun_are_said_to_be_ignored(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        f"version: 1\nruns:\n  - {{subscription: {SUB}, resource_group: rg, factory: f-a,"
        f" pipeline: P, reference_run_id: {REFERENCE}, parameters: {{a: 1}}}}\n"
    )
    (warning,) = load_manifest(path, environ={}).warnings
    assert warning.path == "runs[0].parameters"
    assert warning.message == (
        "ignored by ADF: a rerun of reference_run_id gets the reference's parameters"
    )
