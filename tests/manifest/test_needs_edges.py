"""``needs`` at its edges: a name that two entries answer to, ids with glob characters, dates
paired across formats and steps, and where each error points."""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchrun.manifest.loader import load_manifest

if TYPE_CHECKING:
    from pathlib import Path

    from tests.manifest.conftest import IssuesOf

HEAD = (
    "version: 1\n"
    "defaults: {subscription: 11111111-1111-1111-1111-111111111111, resource_group: rg}\n"
    "runs:\n"
)
DATES = "dates: {from: 2026-11-01, to: 2026-11-03, parameter: d}"


def needs_of(tmp_path: Path, runs: str) -> dict[str, tuple[str, ...]]:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + runs)
    return dict(load_manifest(path, environ={}).needs)


def test_a_need_that_is_a_run_id_and_an_expanded_entrys_id_is_an_error(
    issues_of: IssuesOf,
) -> None:
    # one entry's runs are load.2026-11-01..03, another's one run is load: which is meant?
    issues = issues_of(
        HEAD + f"  - {{id: load, factory: f-a, pipeline: P, {DATES}}}\n"
        "  - {id: load, factory: f-a, pipeline: Q}\n"
        "  - {id: build, factory: f-b, pipeline: B, needs: [load]}\n"
    )
    assert issues == [
        "6:52: runs[2].needs[0]: 'load' is the id of a run and of an expanded entry "
        "(3 runs): it could mean either; give one of the two entries another id"
    ]


def test_an_id_with_glob_characters_is_needed_as_written_not_as_a_glob(tmp_path: Path) -> None:
    needs = needs_of(
        tmp_path,
        "  - {id: 'load[eu]', factory: f-a, pipeline: P}\n"
        "  - {id: loade, factory: f-a, pipeline: P}\n"
        "  - {id: build, factory: f-b, pipeline: B, needs: ['load[eu]']}\n",
    )
    assert needs == {"build": ("load[eu]",)}


def test_dates_pair_by_the_moment_whatever_the_format_or_the_steps_spelling(
    tmp_path: Path,
) -> None:
    needs = needs_of(
        tmp_path,
        "  - {id: load, factory: [f-a, f-b], pipeline: P,\n"
        "     dates: {from: 2026-11-01, to: 2026-11-02, parameter: d, format: '%Y%m%d'}}\n"
        "  - {id: build, factory: f-c, pipeline: B, needs: [load],\n"
        "     dates: {from: 2026-11-01, to: 2026-11-02, step: 24h, parameter: d}}\n",
    )
    assert needs == {
        "build.2026-11-01": ("load.f-a.20261101", "load.f-b.20261101"),
        "build.2026-11-02": ("load.f-a.20261102", "load.f-b.20261102"),
    }
