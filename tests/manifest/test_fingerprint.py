"""The manifest fingerprint: what ``--resume`` checks a report against. Every field that changes
what is sent changes it; nothing else does.

Each manifest here names its run with an explicit ``id``: a derived id (``factory.pipeline``)
would change with the factory or pipeline, and the fingerprint with it, whether or not the
field itself is hashed.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import pytest

from batchrun.errors import ManifestError
from batchrun.manifest.loader import load_manifest
from batchrun.manifest.rules import FIELDS

if TYPE_CHECKING:
    from pathlib import Path

SUB1 = "11111111-1111-1111-1111-111111111111"
SUB2 = "22222222-2222-2222-2222-222222222222"
REFERENCE = "2f7fdb90-5df1-4b8e-ac2f-064cfa58202b"
BASE = {
    "id": "nightly",
    "subscription": SUB1,
    "resource_group": "rg-data",
    "factory": "sales-eu",
    "pipeline": "LoadOrders",
    "parameters": "{day: 1}",
}
RECOVERY = BASE | {"reference_run_id": REFERENCE, "is_recovery": "true"}


def manifest(fields: dict[str, str]) -> str:
    body = "".join(f"    {key}: {value}\n" for key, value in fields.items())
    return "version: 1\nruns:\n  - " + body.removeprefix("    ")


def fingerprint(tmp_path: Path, fields: dict[str, str], name: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(manifest(fields))
    return load_manifest(path, environ={}).fingerprint


CHANGES = [
    (BASE, "subscription", SUB2),
    (BASE, "resource_group", "rg-other"),
    (BASE, "factory", "sales-us"),
    (BASE, "pipeline", "LoadRefunds"),
    (BASE, "parameters", "{day: 2}"),
    (BASE, "id", "nightly-2"),
    (BASE, "reference_run_id", REFERENCE),
    (RECOVERY, "is_recovery", "false"),
    (RECOVERY, "start_from_failure", "true"),
    (RECOVERY, "start_activity_name", "CopySales"),
]


@pytest.mark.parametrize(
    ("base", "field", "value"), [pytest.param(*change, id=change[1]) for change in CHANGES]
)
def test_every_field_of_a_run_is_in_the_fingerprint(
    tmp_path: Path, base: dict[str, str], field: str, value: str
) -> None:
    before = fingerprint(tmp_path, base, "before")
    after = fingerprint(tmp_path, base | {field: value}, "after")
    assert before != after, f"changing {field} left the fingerprint as it was"


def test_layout_comments_and_key_order_do_not_change_the_fingerprint(tmp_path: Path) -> None:
    block = fingerprint(tmp_path, BASE, "block")
    reordered = dict(reversed(BASE.items()))
    path = tmp_path / "flow.yaml"
    path.write_text(
        "# tonight's run\nversion: 1\nruns: [{"
        + ", ".join(f"{key}: {value}" for key, value in reordered.items())
        + "}]  # one\n"
    )
    assert fingerprint(tmp_path, reordered, "reordered") == block
    assert load_manifest(path, environ={}).fingerprint == block


def test_the_manifests_path_is_not_in_the_fingerprint(tmp_path: Path) -> None:
    # a report is resumed with the same manifest wherever it was copied to
    assert fingerprint(tmp_path, BASE, "here") == fingerprint(tmp_path, BASE, "there")


@pytest.mark.parametrize("count", [3, 4097, 4098])  # hashed in one chunk, one and none, two
def test_the_fingerprint_is_the_sha256_of_the_documented_canonical_json(
    tmp_path: Path, count: int
) -> None:
    # loader.py: sha256 of {"fields": FIELDS, "runs": [[the fields of each run], ...]}, sorted
    # keys, no spaces. A report is resumed by a later batchrun only while this text stays put.
    path = tmp_path / "many.yaml"
    path.write_text(
        f"version: 1\ndefaults: {{subscription: {SUB1}, resource_group: rg, factory: f-a}}\n"
        "runs:\n"
        + "".join(f"  - {{pipeline: P, parameters: {{n: {n}, s: é}}}}\n" for n in range(count))
    )
    manifest = load_manifest(path, environ={})
    rows = [[getattr(run, name) for name in FIELDS] for run in manifest.runs]
    text = json.dumps({"fields": FIELDS, "runs": rows}, sort_keys=True, separators=(",", ":"))
    assert manifest.fingerprint == hashlib.sha256(text.encode()).hexdigest()


def test_an_unreadable_manifest_is_one_issue_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ManifestError) as caught:
        load_manifest(missing, environ={})
    (issue,) = caught.value.issues
    assert str(issue) == f"{missing}:0:0: cannot read the manifest: No such file or directory"


# A manifest without needs, with what feeds the fingerprint (defaults merged in, lists
# expanded, derived and explicit ids, a recovery entry), and its fingerprint as computed by
# main at 8a2bb12, before needs and dates existed: old reports must keep resuming.
WITHOUT_NEEDS = f"""version: 1
defaults: {{subscription: {SUB1}, resource_group: rg-data, parameters: {{env: prod}}}}
runs:
  - id: loads
    factory: [sales-eu, sales-us]
    pipeline: LoadOrders
    parameters: {{day: "2026-11-03"}}
  - factory: finance-core
    pipeline: BuildMarts
  - factory: finance-core
    pipeline: BuildMarts
    reference_run_id: {REFERENCE}
    is_recovery: true
    start_from_failure: true
"""
FINGERPRINT_ON_MAIN = "f79968e6723c0a93384b9f07351f6270dbc93e90c5af0140c194e3ff863b835a"


def test_a_manifest_without_needs_keeps_the_fingerprint_it_had(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(WITHOUT_NEEDS)
    assert load_manifest(path, environ={}).fingerprint == FINGERPRINT_ON_MAIN


def test_needs_change_the_fingerprint_and_are_hashed_as_documented(tmp_path: Path) -> None:
    path = tmp_path / "with.yaml"
    path.write_text(WITHOUT_NEEDS + "    needs: [loads]\n")
    manifest = load_manifest(path, environ={})
    assert manifest.fingerprint != FINGERPRINT_ON_MAIN
    # loader.py: the needs are appended after the runs, as resolved run ids
    rows = [[getattr(run, name) for name in FIELDS] for run in manifest.runs]
    runs = json.dumps({"fields": FIELDS, "runs": rows}, sort_keys=True, separators=(",", ":"))
    needs = {"finance-core.BuildMarts#2": ["loads.sales-eu", "loads.sales-us"]}
    text = runs[:-1] + ',"needs":' + json.dumps(needs, separators=(",", ":")) + "}"
    assert manifest.fingerprint == hashlib.sha256(text.encode()).hexdigest()


def test_a_manifest_that_mentions_needs_only_in_a_value_is_hashed_as_without(
    tmp_path: Path,
) -> None:
    # the loader keeps what resolving needs takes only when the file mentions needs
    path = tmp_path / "mentions.yaml"
    path.write_text(WITHOUT_NEEDS.replace("env: prod", "env: needs"))
    manifest = load_manifest(path, environ={})
    assert manifest.needs == {}
    rows = [[getattr(run, name) for name in FIELDS] for run in manifest.runs]
    text = json.dumps({"fields": FIELDS, "runs": rows}, sort_keys=True, separators=(",", ":"))
    assert manifest.fingerprint == hashlib.sha256(text.encode()).hexdigest()
