"""``dates``: one run per date, its id and parameter; every wrong range reported where it is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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


def runs_of(
    tmp_path: Path, runs: str, environ: dict[str, str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + runs)
    return [(run.id, run.parameters) for run in load_manifest(path, environ=environ or {}).runs]


def test_a_range_is_one_run_per_day_both_ends_included(tmp_path: Path) -> None:
    runs = runs_of(
        tmp_path,
        "  - id: backfill\n    factory: f-a\n    pipeline: P\n    parameters: {env: prod}\n"
        "    dates: {from: 2026-10-30, to: 2026-11-02, parameter: run_date}\n",
    )
    assert runs == [
        (f"backfill.{day}", {"env": "prod", "run_date": day})
        for day in ("2026-10-30", "2026-10-31", "2026-11-01", "2026-11-02")
    ]


def test_without_an_id_the_date_follows_factory_and_pipeline(tmp_path: Path) -> None:
    runs = runs_of(
        tmp_path,
        "  - {factory: [f-a, f-b], pipeline: P,"
        " dates: {from: '2026-11-01', to: '2026-11-02', parameter: d}}\n",
    )
    assert [run_id for run_id, _ in runs] == [
        "f-a.P.2026-11-01",
        "f-a.P.2026-11-02",
        "f-b.P.2026-11-01",
        "f-b.P.2026-11-02",
    ]


def test_an_hour_step_gives_iso_hours(tmp_path: Path) -> None:
    runs = runs_of(
        tmp_path,
        "  - {id: h, factory: f-a, pipeline: P,"
        " dates: {from: '2026-11-01T22:00', to: '2026-11-02T04:00', step: 3h, parameter: at}}\n",
    )
    assert runs == [
        ("h.2026-11-01T22:00", {"at": "2026-11-01T22:00"}),
        ("h.2026-11-02T01:00", {"at": "2026-11-02T01:00"}),
        ("h.2026-11-02T04:00", {"at": "2026-11-02T04:00"}),
    ]


def test_a_format_shapes_the_id_and_the_value(tmp_path: Path) -> None:
    runs = runs_of(
        tmp_path,
        "  - {id: w, factory: f-a, pipeline: P,"
        " dates: {from: 2026-11-01, to: 2026-11-15, step: 7d, format: '%Y%m%d', parameter: d}}\n",
    )
    assert runs == [(f"w.{d}", {"d": d}) for d in ("20261101", "20261108", "20261115")]


def test_the_date_overrides_a_default_parameter_and_dates_may_be_a_default(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1\n"
        "defaults:\n"
        "  subscription: 11111111-1111-1111-1111-111111111111\n"
        "  resource_group: rg\n"
        "  parameters: {d: none, env: prod}\n"
        "  dates: {from: 2026-11-01, to: 2026-11-02, parameter: d}\n"
        "runs:\n"
        "  - {id: a, factory: f-a, pipeline: P}\n"
        "  - {id: b, factory: f-a, pipeline: Q, dates: {from: 2026-12-24, to: 2026-12-24,"
        " parameter: day}}\n"
    )
    runs = [(r.id, r.parameters) for r in load_manifest(path, environ={}).runs]
    assert runs == [
        ("a.2026-11-01", {"d": "2026-11-01", "env": "prod"}),
        ("a.2026-11-02", {"d": "2026-11-02", "env": "prod"}),
        ("b.2026-12-24", {"d": "none", "env": "prod", "day": "2026-12-24"}),
    ]


def test_the_range_may_come_from_the_environment(tmp_path: Path) -> None:
    runs = runs_of(
        tmp_path,
        "  - {id: b, factory: f-a, pipeline: P,"
        " dates: {from: '${FROM}', to: '${TO:-2026-11-02}', parameter: d}}\n",
        environ={"FROM": "2026-11-01"},
    )
    assert [run_id for run_id, _ in runs] == ["b.2026-11-01", "b.2026-11-02"]


def test_the_range_is_limited_by_max(tmp_path: Path, issues_of: IssuesOf) -> None:
    entry = "  - {id: b, factory: f-a, pipeline: P, dates: {from: 2026-11-01, to: 2026-11-05, "
    assert len(runs_of(tmp_path, entry + "max: 5, parameter: d}}\n")) == 5
    assert issues_of(HEAD + entry + "max: 4, parameter: d}}\n") == [
        "4:70: runs[0].dates.to: the range makes 5 runs and max is 4: narrow the range, or"
        " raise max if that many runs are meant"
    ]


def test_the_default_max_is_400(issues_of: IssuesOf) -> None:
    found = issues_of(
        HEAD + "  - {id: b, factory: f-a, pipeline: P,"
        " dates: {from: 2026-01-01, to: 2027-02-05, parameter: d}}\n"
    )
    assert len(found) == 1
    assert "the range makes 401 runs and max is 400" in found[0]


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        (
            "{from: 2026-11-03, to: 2026-11-01, parameter: d}",
            "4:70: runs[0].dates.to: 'to' (2026-11-01) is before 'from' (2026-11-03)",
        ),
        (
            "{from: 2026-11-01, to: 2026-11-03, step: 1w, parameter: d}",
            "4:88: runs[0].dates.step: '1w' is not a step: write a number of days or hours,"
            " like 1d or 6h",
        ),
        (
            "{from: 2026-11-01, to: 2026-11-03, parameter: d, every: 1d}",
            "4:96: runs[0].dates.every: unknown key 'every': expected format, from, max,"
            " parameter, step, to",
        ),
        (
            "{from: 2026-11-01, to: 2026-11-03}",
            "4:47: runs[0].dates: missing 'parameter': the pipeline parameter that gets each date",
        ),
        (
            "{from: 'Nov 1', to: 2026-11-03, parameter: d}",
            "4:54: runs[0].dates.from: 'Nov 1' is not a date: write YYYY-MM-DD, or"
            " YYYY-MM-DDTHH:MM for hours",
        ),
        (
            "{from: '2026-11-01T00:00+01:00', to: 2026-11-03, parameter: d}",
            "4:54: runs[0].dates.from: '2026-11-01T00:00+01:00' has a time zone",
        ),
        (
            "{from: 2026-11-01, to: 2026-11-03, format: '%Y-%m', parameter: d}",
            "4:90: runs[0].dates.format: format '%Y-%m' writes two dates as '2026-11'",
        ),
        (
            "{from: 2026-11-01, to: 2026-11-03, max: 0, parameter: d}",
            "4:87: runs[0].dates.max: expected a whole number above 0",
        ),
        ("[2026-11-01, 2026-11-03]", "4:47: runs[0].dates: expected a mapping {from: DATE"),
    ],
)
def test_a_wrong_range_is_reported_at_its_key(
    issues_of: IssuesOf, dates: str, expected: str
) -> None:
    found = issues_of(HEAD + f"  - {{id: b, factory: f-a, pipeline: P, dates: {dates}}}\n")
    assert len(found) == 1, found
    assert found[0].startswith(expected)


def test_the_runs_own_parameters_cannot_set_the_dates_parameter(issues_of: IssuesOf) -> None:
    found = issues_of(
        HEAD + "  - id: b\n    factory: f-a\n    pipeline: P\n"
        "    parameters: {env: prod, d: '2026-01-01'}\n"
        "    dates: {from: 2026-11-01, to: 2026-11-02, parameter: d}\n"
    )
    assert found == [
        "7:29: runs[0].parameters.d: 'd' is set to each date by dates.parameter: remove it here"
    ]


def test_dated_ids_must_still_be_unique(issues_of: IssuesOf) -> None:
    found = issues_of(
        HEAD + "  - {id: b.2026-11-01, factory: f-a, pipeline: P}\n"
        "  - {id: b, factory: f-a, pipeline: P,"
        " dates: {from: 2026-11-01, to: 2026-11-01, parameter: d}}\n"
    )
    assert found == [
        "5:10: runs[1].id: id 'b.2026-11-01' is already used by runs[0].id (line 4, column 10)"
    ]
