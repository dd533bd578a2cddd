"""The order of a manifest with needs: levels, the longest chain, a valid trigger order, and
what ``validate`` says of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from batchrun.manifest.describe import describe
from batchrun.manifest.loader import load_manifest
from batchrun.manifest.order import in_order, levels, longest_chain

if TYPE_CHECKING:
    from pathlib import Path

    from batchrun.manifest.loader import Manifest

HEAD = (
    "version: 1\n"
    "defaults: {subscription: 11111111-1111-1111-1111-111111111111, resource_group: rg,"
    " factory: f-a, pipeline: P}\n"
    "runs:\n"
)


def manifest(tmp_path: Path, runs: str) -> Manifest:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + runs)
    return load_manifest(path, environ={})


@pytest.fixture
def night(tmp_path: Path) -> Manifest:
    # export is listed first, and two chains run side by side
    return manifest(
        tmp_path,
        "  - {id: export, needs: [mart]}\n"
        "  - {id: mart, needs: [load-a, load-b]}\n"
        "  - {id: load-a}\n"
        "  - {id: load-b}\n"
        "  - {id: other}\n"
        "  - {id: other-mart, needs: other}\n",
    )


def test_in_order_puts_each_run_after_its_needs_and_the_earliest_ready_run_first(
    night: Manifest,
) -> None:
    # the earliest run in manifest order that is ready goes first
    assert [spec.id for spec in in_order(night)] == [
        "load-a",
        "load-b",
        "mart",
        "export",
        "other",
        "other-mart",
    ]


def test_levels_group_the_runs_by_their_depth(night: Manifest) -> None:
    assert levels(night) == [["load-a", "load-b", "other"], ["mart", "other-mart"], ["export"]]


def test_the_longest_chain_starts_at_a_run_that_needs_nothing(night: Manifest) -> None:
    assert longest_chain(night) == ["load-a", "mart", "export"]


def test_without_needs_there_is_one_level_and_no_chain(tmp_path: Path) -> None:
    flat = manifest(tmp_path, "  - {id: a}\n  - {id: b}\n")
    assert levels(flat) == [["a", "b"]]
    assert longest_chain(flat) == []
    assert in_order(flat) == list(flat.runs)
    assert "dependency" not in describe([flat])


def test_describe_says_the_levels_and_the_longest_chain(night: Manifest) -> None:
    lines = describe([night]).splitlines()
    assert lines[-2:] == [
        "dependency levels: 3 (level 1: 3 runs, level 2: 2 runs, level 3: 1 run)",
        "longest chain: load-a -> mart -> export",
    ]


def test_describe_shortens_a_long_chain_and_many_levels(tmp_path: Path) -> None:
    runs = "  - {id: r00}\n" + "".join(
        f"  - {{id: r{n:02}, needs: r{n - 1:02}}}\n" for n in range(1, 20)
    )
    lines = describe([manifest(tmp_path, runs)]).splitlines()
    assert lines[-2] == (
        "dependency levels: 20 (level 1: 1 run, level 2: 1 run, level 3: 1 run, level 4: 1 run,"
        " level 5: 1 run, level 6: 1 run, 13 more levels, level 20: 1 run)"
    )
    assert lines[-1] == (
        "longest chain (20 runs): r00 -> r01 -> r02 -> r03 -> ... 12 more ... -> r16 -> r17"
        " -> r18 -> r19"
    )


def test_a_date_chain_is_ordered_per_date(tmp_path: Path) -> None:
    dates = "dates: {from: 2026-11-01, to: 2026-11-02, parameter: d}"
    backfill = manifest(
        tmp_path,
        f"  - {{id: build, needs: load, {dates}}}\n  - {{id: load, {dates}}}\n",
    )
    assert [spec.id for spec in in_order(backfill)] == [
        "load.2026-11-01",
        "build.2026-11-01",
        "load.2026-11-02",
        "build.2026-11-02",
    ]
    assert levels(backfill) == [
        ["load.2026-11-01", "load.2026-11-02"],
        ["build.2026-11-01", "build.2026-11-02"],
    ]
