"""``needs``: resolved to run ids after expansion (exact, entry id, glob, per date), and every
way it can be wrong reported at the needs item, with the manifest's other errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from batchrun.manifest.loader import load_manifest

if TYPE_CHECKING:
    from pathlib import Path

    from tests.manifest.conftest import IssuesOf

HEAD = (
    "version: 1\n"
    "defaults: {subscription: 11111111-1111-1111-1111-111111111111, resource_group: rg}\n"
    "runs:\n"
)


def needs_of(tmp_path: Path, runs: str) -> dict[str, tuple[str, ...]]:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + runs)
    return dict(load_manifest(path, environ={}).needs)


def test_an_exact_id_a_derived_id_and_a_lone_string_are_needed(tmp_path: Path) -> None:
    needs = needs_of(
        tmp_path,
        "  - {id: load, factory: f-a, pipeline: Load}\n"
        "  - {factory: f-a, pipeline: Stage}\n"
        "  - {id: build, factory: f-b, pipeline: Build, needs: [load, f-a.Stage]}\n"
        "  - {id: export, factory: f-b, pipeline: Export, needs: build}\n",
    )
    assert needs == {"build": ("load", "f-a.Stage"), "export": ("build",)}


def test_needed_ids_are_in_manifest_order_once_each(tmp_path: Path) -> None:
    needs = needs_of(
        tmp_path,
        "  - {id: a, factory: f-a, pipeline: P}\n"
        "  - {id: b, factory: f-a, pipeline: P}\n"
        "  - {id: c, factory: f-a, pipeline: P, needs: [b, a, 'a', '[ab]']}\n",
    )
    assert needs == {"c": ("a", "b")}


def test_a_glob_matches_expanded_ids_case_sensitively(tmp_path: Path) -> None:
    needs = needs_of(
        tmp_path,
        "  - {id: loads, factory: [f-a, f-b], pipeline: P}\n"
        "  - {id: Loads, factory: f-c, pipeline: P}\n"
        "  - {id: mart, factory: f-c, pipeline: M, needs: ['loads.*']}\n"
        "  - {id: mart2, factory: f-c, pipeline: M, needs: ['loads.f-[b]']}\n",
    )
    assert needs == {"mart": ("loads.f-a", "loads.f-b"), "mart2": ("loads.f-b",)}


def test_an_expanded_entrys_own_id_means_all_its_runs(tmp_path: Path) -> None:
    needs = needs_of(
        tmp_path,
        "  - {id: loads, factory: [f-a, f-b], pipeline: [P, Q]}\n"
        "  - {id: mart, factory: f-c, pipeline: M, needs: [loads]}\n",
    )
    assert needs == {"mart": ("loads.f-a.P", "loads.f-a.Q", "loads.f-b.P", "loads.f-b.Q")}


DATES = "dates: {from: 2026-11-01, to: 2026-11-03, parameter: d}"


def test_two_entries_with_the_same_dates_pair_per_date(tmp_path: Path) -> None:
    needs = needs_of(
        tmp_path,
        f"  - {{id: load, factory: [f-a, f-b], pipeline: P, {DATES}}}\n"
        f"  - {{id: build, factory: f-c, pipeline: B, {DATES}, needs: [load]}}\n",
    )
    assert needs == {
        f"build.2026-11-0{day}": (f"load.f-a.2026-11-0{day}", f"load.f-b.2026-11-0{day}")
        for day in (1, 2, 3)
    }


def test_a_derived_id_with_dates_pairs_per_date_too(tmp_path: Path) -> None:
    needs = needs_of(
        tmp_path,
        f"  - {{factory: f-a, pipeline: Load, {DATES}}}\n"
        f"  - {{id: build, factory: f-c, pipeline: B, {DATES}, needs: [f-a.Load]}}\n",
    )
    assert needs["build.2026-11-02"] == ("f-a.Load.2026-11-02",)


def test_different_dates_or_an_undated_side_need_all_the_runs(tmp_path: Path) -> None:
    other = "dates: {from: 2026-11-02, to: 2026-11-03, parameter: d}"
    needs = needs_of(
        tmp_path,
        f"  - {{id: load, factory: f-a, pipeline: P, {DATES}}}\n"
        f"  - {{id: build, factory: f-c, pipeline: B, {other}, needs: [load]}}\n"
        "  - {id: report, factory: f-c, pipeline: R, needs: [load]}\n",
    )
    every = ("load.2026-11-01", "load.2026-11-02", "load.2026-11-03")
    assert needs == {"build.2026-11-02": every, "build.2026-11-03": every, "report": every}


def test_a_glob_over_dated_runs_is_not_paired(tmp_path: Path) -> None:
    needs = needs_of(
        tmp_path,
        f"  - {{id: load, factory: f-a, pipeline: P, {DATES}}}\n"
        f"  - {{id: build, factory: f-c, pipeline: B, {DATES}, needs: ['load.*']}}\n",
    )
    assert needs["build.2026-11-01"] == (
        "load.2026-11-01",
        "load.2026-11-02",
        "load.2026-11-03",
    )


def test_a_need_may_name_a_run_further_down(tmp_path: Path) -> None:
    needs = needs_of(
        tmp_path,
        "  - {id: b, factory: f-a, pipeline: P, needs: [a]}\n"
        "  - {id: a, factory: f-a, pipeline: P}\n",
    )
    assert needs == {"b": ("a",)}


def test_a_manifest_without_needs_has_none(tmp_path: Path) -> None:
    assert needs_of(tmp_path, "  - {id: a, factory: f-a, pipeline: P}\n") == {}


def test_an_unknown_id_is_reported_at_its_item_with_the_closest_id(
    issues_of: IssuesOf,
) -> None:
    found = issues_of(
        HEAD + "  - {id: load-orders, factory: f-a, pipeline: P}\n"
        "  - id: build\n"
        "    factory: f-a\n"
        "    pipeline: B\n"
        "    needs: [load-orders, load-order]\n"
    )
    assert found == [
        "8:26: runs[1].needs[1]: unknown run id 'load-order': no run has it after expansion;"
        " did you mean 'load-orders'?"
    ]


def test_an_unknown_lone_string_is_reported_at_it(issues_of: IssuesOf) -> None:
    found = issues_of(HEAD + "  - {id: b, factory: f-a, pipeline: P, needs: zzz}\n")
    assert found == ["4:47: runs[0].needs: unknown run id 'zzz': no run has it after expansion"]


def test_a_glob_that_matches_nothing_is_an_error(issues_of: IssuesOf) -> None:
    found = issues_of(
        HEAD + "  - {id: load, factory: f-a, pipeline: P}\n"
        "  - {id: b, factory: f-a, pipeline: P, needs: [load, 'loads.*']}\n"
    )
    assert found == ["5:54: runs[1].needs[1]: the glob 'loads.*' matches no run id"]


def test_a_run_that_needs_itself_is_an_error(issues_of: IssuesOf) -> None:
    found = issues_of(
        HEAD + "  - {id: a, factory: f-a, pipeline: P}\n"
        "  - {id: b, factory: f-a, pipeline: P, needs: [a, b]}\n"
    )
    assert found == ["5:51: runs[1].needs[1]: 'b' names this run: a run cannot need itself"]


def test_a_glob_that_takes_in_the_run_itself_is_an_error_too(issues_of: IssuesOf) -> None:
    found = issues_of(HEAD + "  - {id: all, factory: [f-a, f-b], pipeline: P, needs: ['*']}\n")
    # and the two runs need each other: a cycle as well
    assert found == [
        "4:57: runs[0].needs[0]: '*' names runs of this entry: a run cannot need itself",
        "4:57: runs[0].needs[0]: cycle: all.f-a -> all.f-b -> all.f-a: none of them could start",
    ]


def test_a_cycle_is_one_error_that_lists_its_members_in_order(issues_of: IssuesOf) -> None:
    found = issues_of(
        HEAD + "  - {id: c, factory: f-a, pipeline: P, needs: [a]}\n"
        "  - {id: a, factory: f-a, pipeline: P, needs: [b]}\n"
        "  - {id: b, factory: f-a, pipeline: P, needs: [c]}\n"
        "  - {id: d, factory: f-a, pipeline: P, needs: [a]}\n"
    )
    # at the need of the cycle's first run in manifest order, c, which names a
    assert found == ["4:48: runs[0].needs[0]: cycle: c -> a -> b -> c: none of them could start"]


def test_two_cycles_are_two_errors(issues_of: IssuesOf) -> None:
    found = issues_of(
        HEAD + "  - {id: a, factory: f-a, pipeline: P, needs: [b]}\n"
        "  - {id: b, factory: f-a, pipeline: P, needs: [a]}\n"
        "  - {id: c, factory: f-a, pipeline: P, needs: [d]}\n"
        "  - {id: d, factory: f-a, pipeline: P, needs: [c]}\n"
    )
    assert [issue.split(": ", 2)[2] for issue in found] == [
        "cycle: a -> b -> a: none of them could start",
        "cycle: c -> d -> c: none of them could start",
    ]


def test_needs_errors_come_sorted_with_the_other_errors(issues_of: IssuesOf) -> None:
    found = issues_of(
        HEAD + "  - {id: a, factory: f-a, pipeline: P, needs: [nope]}\n"
        "  - {id: b, factory: f-a, pipeline: P, start_from_failure: true}\n"
    )
    assert [issue.split(":")[:2] for issue in found] == [["4", "48"], ["5", "60"]]


def test_a_need_of_an_invalid_entry_is_not_also_called_unknown(issues_of: IssuesOf) -> None:
    found = issues_of(
        HEAD + "  - {id: load, factory: f_a, pipeline: P}\n"
        "  - {id: b, factory: f-a, pipeline: P, needs: [load]}\n"
    )
    assert len(found) == 1
    assert "'f_a' is not a valid factory name" in found[0]


@pytest.mark.parametrize(
    ("needs", "message"),
    [
        ("''", "4:48: runs[0].needs[0]: must not be empty"),
        ("{a: 1}", "4:47: runs[0].needs: expected a run id or a glob (load.*), got a mapping"),
        ("[1]", "4:48: runs[0].needs[0]: expected a run id or a glob (load.*), got the integer 1"),
    ],
)
def test_a_needs_item_must_be_text(issues_of: IssuesOf, needs: str, message: str) -> None:
    text = HEAD + f"  - {{id: b, factory: f-a, pipeline: P, needs: {needs}}}\n"
    if needs == "''":
        text = text.replace("needs: ''", "needs: ['']")
    assert issues_of(text)[0].startswith(message)


def test_needs_cannot_be_a_default(issues_of: IssuesOf) -> None:
    found = issues_of(
        "version: 1\ndefaults: {subscription: s, resource_group: rg, needs: [a]}\n"
        "runs:\n  - {id: a, factory: f-a, pipeline: P}\n"
    )
    assert found == [
        "2:56: defaults.needs: needs name the runs one entry waits for, so 'needs' cannot be a"
        " default"
    ]


def test_an_item_may_take_its_id_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        HEAD + "  - {id: load, factory: f-a, pipeline: P}\n"
        "  - {id: b, factory: f-a, pipeline: P, needs: ['${FIRST}']}\n"
    )
    assert load_manifest(path, environ={"FIRST": "load"}).needs == {"b": ("load",)}


def test_only_the_first_unknown_ids_get_a_hint(issues_of: IssuesOf) -> None:
    items = ", ".join(f"lod{n}" for n in range(12))
    runs = "".join(f"  - {{id: load{n}, factory: f-a, pipeline: P}}\n" for n in range(12))
    found = issues_of(HEAD + runs + f"  - {{id: b, factory: f-a, pipeline: P, needs: [{items}]}}\n")
    assert [("did you mean" in issue) for issue in found] == [True] * 10 + [False] * 2
