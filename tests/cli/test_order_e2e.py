"""Nights with an order (issue #15), end to end: the real CLI against an emulator process whose
runs last one to three seconds, ``--poll 0.2``.

``needs`` across two factories in two subscriptions, each level created only once the runs it
needs have ended (on the emulator's clock, and on the report's); a failed load skipping its
dependents transitively while an independent chain completes; kill -9 in the middle of a chain,
then ``--resume``; cycle, unknown-id and empty-glob errors at the needs item's FILE:LINE:COL with
nothing sent; ``dates`` whose needs pair day by day. (The 30-day ``--only-missing`` backfill is
tests/cli/test_only_missing_e2e.py's.)
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

import pytest

from batchrun.report.reader import read_records
from batchrun.times import parse_time
from tests.helpers.adf_runs import factory_runs
from tests.helpers.child import start_child
from tests.helpers.cli import (
    FAST,
    SUB_A,
    SUB_B,
    StartEmulator,
    batchrun,
    batchrun_offline,
    run_cli,
    start_configured,
)
from tests.helpers.paths import ROOT

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime
    from pathlib import Path

    from batchrun.emulator.process import EmulatorProcess

pytestmark = pytest.mark.e2e

# loads in one subscription, marts in another; LoadStock outlasts LoadSales so that a mart
# triggered after the first load ended (not after both) is caught; LoadDay runs one at a time
# (ADF's pipeline concurrency), so its dates end two seconds apart
CONFIG = f"""
settings: {{run_queued_ms: 0, run_duration_ms: 1000, seed: 1}}
subscriptions:
  {SUB_A}:
    resource_groups:
      rg-data:
        factories:
          ingest:
            pipelines:
              LoadSales: {{duration_ms: 1000}}
              LoadStock: {{duration_ms: 2500}}
              LoadBroken: {{failure_rate: 1.0}}
              LoadDay: {{duration_ms: 2000, concurrency: 1}}
              ExportReports: {{}}
  {SUB_B}:
    resource_groups:
      rg-marts:
        factories:
          marts:
            pipelines:
              BuildSalesMart: {{duration_ms: 2000}}
              BuildStockMart: {{duration_ms: 2000}}
              BuildBrokenMart: {{}}
              BuildDay: {{}}
"""
INGEST = {"subscription": SUB_A, "resource_group": "rg-data", "factory": "ingest"}
MARTS = {"subscription": SUB_B, "resource_group": "rg-marts", "factory": "marts"}

HEAD = (
    f"version: 1\ndefaults: {{subscription: {SUB_A}, resource_group: rg-data, factory: ingest}}\n"
)
MARTS_FIELDS = f"    subscription: {SUB_B}\n    resource_group: rg-marts\n    factory: marts\n"

# the export first: the order of the night comes from `needs`, not from the manifest
CHAIN = (
    HEAD
    + "runs:\n"
    + "  - id: export\n    pipeline: ExportReports\n    needs: [marts]\n"
    + "  - id: loads\n    pipeline: [LoadSales, LoadStock]\n"
    + "  - id: marts\n"
    + MARTS_FIELDS
    + "    pipeline: [BuildSalesMart, BuildStockMart]\n"
    + '    needs: ["loads.*"]\n'
)
LOADS = ("loads.LoadSales", "loads.LoadStock")
MART_IDS = ("marts.BuildSalesMart", "marts.BuildStockMart")
CHAIN_NEEDS = {**dict.fromkeys(MART_IDS, LOADS), "export": MART_IDS}
CHAIN_IDS = {*LOADS, *MART_IDS, "export"}


@pytest.fixture
def emulator(start_emulator: StartEmulator, tmp_path: Path) -> EmulatorProcess:
    return start_configured(start_emulator, tmp_path, CONFIG, "--quiet")


# --- reading the report and the emulator -------------------------------------------------------


def trigger_lines(report: Path) -> list[dict[str, Any]]:
    """The lines that say a createRun was answered (not outcome lines, not skipped lines)."""
    return [
        line
        for line in read_records(report)
        if "outcome" not in line and line.get("status") != "skipped"
    ]


def only_trigger(report: Path) -> dict[str, dict[str, Any]]:
    """Each id's trigger line; fails if an id has more than one."""
    lines = trigger_lines(report)
    ids = [line["id"] for line in lines]
    assert len(ids) == len(set(ids)), f"an id triggered twice: {sorted(ids)}"
    return {line["id"]: line for line in lines}


def outcome_lines(report: Path) -> dict[str, dict[str, Any]]:
    return {line["id"]: line for line in read_records(report) if "outcome" in line}


def lines_of(report: Path, run: str) -> list[dict[str, Any]]:
    return [line for line in read_records(report) if line["id"] == run]


def time_of(value: Any) -> datetime:
    moment = parse_time(value, naive_is_utc=True)
    assert moment is not None, f"not a time: {value!r}"
    return moment


def adf_runs(emulator: EmulatorProcess) -> dict[str, dict[str, Any]]:
    """Every run the emulator holds in both factories, by runId."""
    runs = factory_runs(emulator, **INGEST) + factory_runs(emulator, **MARTS)
    return {run["runId"]: run for run in runs}


def runs_per_pipeline(emulator: EmulatorProcess) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in adf_runs(emulator).values():
        counts[run["pipelineName"]] = counts.get(run["pipelineName"], 0) + 1
    return counts


def assert_created_after_needs_ended(
    report: Path, emulator: EmulatorProcess, needs: Mapping[str, Sequence[str]]
) -> None:
    """Each dependent's run was created in ADF only after every run it needs had ended there
    (the emulator's clock: runStart is when it was created); and the report agrees: the
    dependent's trigger started after the needed runs' outcome lines say they ended."""
    triggers = only_trigger(report)
    outcomes = outcome_lines(report)
    runs = adf_runs(emulator)
    for dependent, needed in needs.items():
        assert dependent in triggers, f"{dependent} was never triggered: {sorted(triggers)}"
        created = time_of(runs[triggers[dependent]["run_id"]]["runStart"])
        sent = time_of(triggers[dependent]["started_at"])
        for need in needed:
            ended = time_of(runs[triggers[need]["run_id"]]["runEnd"])
            assert created >= ended, f"{dependent} created at {created}, {need} ended at {ended}"
            assert need in outcomes, f"{need} is needed by {dependent} but has no outcome line"
            assert outcomes[need]["outcome"] == "Succeeded"
            reported_end = time_of(outcomes[need]["run_end"])
            assert sent >= reported_end, f"{dependent} sent at {sent}, {need} ended {reported_end}"


# --- a three-level chain over two factories and two subscriptions ------------------------------


def test_a_three_level_chain_over_two_subscriptions_runs_level_after_level(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    done = run_cli(tmp_path, emulator, CHAIN, *FAST)  # no --wait: needs imply following
    assert done.code == 0, done.stderr[-3000:]
    triggers = only_trigger(done.report)
    assert set(triggers) == CHAIN_IDS
    assert {line["status"] for line in triggers.values()} == {"succeeded"}
    assert len({line["run_id"] for line in triggers.values()}) == len(CHAIN_IDS)
    assert_created_after_needs_ended(done.report, emulator, CHAIN_NEEDS)
    # the loads need nothing: both were sent at once, not one after the other
    sales_end = time_of(outcome_lines(done.report)["loads.LoadSales"]["run_end"])
    assert time_of(triggers["loads.LoadStock"]["started_at"]) < sales_end
    stats = emulator.stats()
    assert stats["runs_created"] == len(CHAIN_IDS)
    assert stats["duplicates"] == 0
    assert runs_per_pipeline(emulator) == {
        "LoadSales": 1, "LoadStock": 1, "BuildSalesMart": 1, "BuildStockMart": 1,
        "ExportReports": 1,
    }  # fmt: skip


def test_dry_run_prints_the_chain_in_a_valid_order_and_validate_its_longest_chain(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(CHAIN)
    dry = batchrun(emulator, "run", str(manifest), "--dry-run", "--log-level", "warning")
    assert dry.code == 0, dry.stderr[-3000:]
    order = [line.split("\t")[0] for line in dry.stdout.splitlines() if "\t" in line]
    assert sorted(order) == sorted(CHAIN_IDS)
    for dependent, needed in CHAIN_NEEDS.items():
        for need in needed:
            assert order.index(need) < order.index(dependent), order
    # stable: among runs free to go, the manifest's order
    assert order.index("loads.LoadSales") < order.index("loads.LoadStock")

    valid = batchrun(emulator, "validate", str(manifest), "--log-level", "warning")
    assert valid.code == 0, valid.stderr[-3000:]
    (chain,) = [line for line in valid.stdout.splitlines() if "longest chain" in line.lower()]
    assert re.search(r"loads\.\w+.*marts\.\w+.*export", chain), chain
    assert "level" in valid.stdout.lower()
    assert emulator.stats()["runs_created"] == 0


# --- a failed dependency --------------------------------------------------------------------


FAILING = (
    HEAD
    + "runs:\n"
    + "  - id: load.broken\n    pipeline: LoadBroken\n"
    + "  - id: mart.broken\n"
    + MARTS_FIELDS
    + "    pipeline: BuildBrokenMart\n    needs: [load.broken]\n"
    + "  - id: export.broken\n    pipeline: ExportReports\n"
    + "    parameters: {mart: broken}\n    needs: [mart.broken]\n"
    + "  - id: load.stock\n    pipeline: LoadStock\n"
    + "  - id: mart.stock\n"
    + MARTS_FIELDS
    + "    pipeline: BuildStockMart\n    needs: [load.stock]\n"
    + "  - id: export.stock\n    pipeline: ExportReports\n"
    + "    parameters: {mart: stock}\n    needs: [mart.stock]\n"
)


def test_a_failed_load_skips_its_dependents_transitively_while_another_chain_completes(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    done = run_cli(tmp_path, emulator, FAILING, "--wait", *FAST)
    assert done.code == 1, done.stderr[-3000:]
    outcomes = outcome_lines(done.report)
    assert outcomes["load.broken"]["outcome"] == "Failed"
    independent = ("load.stock", "mart.stock", "export.stock")
    assert {run: outcomes.get(run, {}).get("outcome") for run in independent} == dict.fromkeys(
        independent, "Succeeded"
    )
    assert_created_after_needs_ended(
        done.report, emulator, {"mart.stock": ["load.stock"], "export.stock": ["mart.stock"]}
    )
    # the independent chain did not wait for the failing one to start
    broken_end = time_of(outcomes["load.broken"]["run_end"])
    assert time_of(only_trigger(done.report)["load.stock"]["started_at"]) < broken_end

    (mart,) = lines_of(done.report, "mart.broken")  # one line, never rewritten
    assert mart["status"] == "skipped"
    assert mart.get("run_id") is None
    assert "load.broken" in mart["reason"] and "Failed" in mart["reason"], mart["reason"]
    assert mart["skipped_because"] == {
        "needs": "load.broken", "root": "load.broken", "root_outcome": "Failed",
    }  # fmt: skip
    (export,) = lines_of(done.report, "export.broken")
    assert export["status"] == "skipped"
    assert export.get("run_id") is None
    assert export["reason"].startswith("needs mart.broken"), export["reason"]
    assert "skipped" in export["reason"] and "load.broken" in export["reason"]
    assert export["skipped_because"] == {
        "needs": "mart.broken", "root": "load.broken", "root_outcome": "Failed",
    }  # fmt: skip

    # nothing was sent for a skipped run
    stats = emulator.stats()
    assert stats["runs_created"] == 4
    assert stats["duplicates"] == 0
    assert runs_per_pipeline(emulator) == {
        "LoadBroken": 1, "LoadStock": 1, "BuildStockMart": 1, "ExportReports": 1,
    }  # fmt: skip
    exports = [r for r in adf_runs(emulator).values() if r["pipelineName"] == "ExportReports"]
    assert [run["parameters"]["mart"] for run in exports] == ["stock"]

    summary = batchrun(emulator, "summary", str(done.report), "--log-level", "warning")
    assert summary.code == 1, summary.stderr[-3000:]
    assert "skipped" in summary.stdout.lower()
    assert "load.broken" in summary.stdout  # the root cause, named


# --- kill -9 in the middle of a chain, then --resume -----------------------------------------


@pytest.mark.parametrize(
    ("killed_after", "not_yet"),
    [(LOADS, (*MART_IDS, "export")), (MART_IDS, ("export",))],
    ids=["loads-triggered", "marts-triggered"],
)
def test_kill_9_in_the_middle_of_a_chain_then_resume_triggers_each_run_once(
    tmp_path: Path,
    emulator: EmulatorProcess,
    killed_after: tuple[str, ...],
    not_yet: tuple[str, ...],
) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(CHAIN)
    report = tmp_path / "report.jsonl"

    def level_triggered() -> bool:
        return report.exists() and set(killed_after) <= set(only_trigger(report))

    with start_child(emulator, manifest, "--report", str(report), *FAST) as child:
        child.wait_until(level_triggered, f"trigger lines for {killed_after}")
        child.kill()  # SIGKILL: no handler, no last line
        assert child.process.returncode == -9, child.stderr[-3000:]
    before = report.read_bytes()
    assert not set(not_yet) & {line["id"] for line in read_records(report)}, (
        "killed too late: the next level had already started"
    )

    resumed = batchrun(emulator, "run", str(manifest), "--resume", "--report", str(report), *FAST)
    assert resumed.code == 0, resumed.stderr[-3000:]
    assert report.read_bytes().startswith(before)  # appended to, never rewritten
    triggers = only_trigger(report)
    assert set(triggers) == CHAIN_IDS
    # one ADF run per id over both processes
    for run in CHAIN_IDS:
        assert len({line["run_id"] for line in lines_of(report, run)}) == 1, run
    stats = emulator.stats()
    assert stats["runs_created"] == len(CHAIN_IDS)
    assert stats["duplicates"] == 0
    assert set(runs_per_pipeline(emulator).values()) == {1}
    assert_created_after_needs_ended(report, emulator, CHAIN_NEEDS)


# --- cycles, unknown ids and globs that match nothing ----------------------------------------


UNKNOWN = (
    HEAD
    + "runs:\n"
    + "  - id: loads\n    pipeline: [LoadSales, LoadStock]\n"
    + "  - id: export\n    pipeline: ExportReports\n    needs:\n"
    + "      - loads.LoadSales\n"
    + "      - loads.LoadSaels\n"
)
EMPTY_GLOB = (
    HEAD
    + "runs:\n"
    + "  - id: loads\n    pipeline: [LoadSales, LoadStock]\n"
    + "  - id: export\n    pipeline: ExportReports\n    needs:\n"
    + "      - marts.*\n"
)
CYCLE = (
    HEAD
    + "runs:\n"
    + "  - id: load.orders\n    pipeline: LoadSales\n    needs:\n      - export.orders\n"
    + "  - id: mart.orders\n    pipeline: LoadStock\n    needs:\n      - load.orders\n"
    + "  - id: export.orders\n    pipeline: ExportReports\n    needs:\n      - mart.orders\n"
    + "  - id: free\n    pipeline: LoadSales\n"
)


def item_positions(text: str, *items: str) -> list[tuple[int, int]]:
    """LINE and COL (1-based) of each block-sequence item ``- ITEM`` under a ``needs:`` key."""
    positions: list[tuple[int, int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() in {f"- {item}" for item in items}:
            positions.append((number, line.index("- ") + 3))
    assert len(positions) == len(items), (items, positions)
    return positions


@pytest.mark.parametrize(
    ("text", "at", "named"),
    [
        (UNKNOWN, ("loads.LoadSaels",), ("loads.LoadSaels",)),
        (EMPTY_GLOB, ("marts.*",), ("marts.*",)),
        (
            CYCLE,
            ("export.orders", "load.orders", "mart.orders"),
            ("cycle", "load.orders", "mart.orders", "export.orders"),
        ),
    ],
    ids=["unknown-id", "empty-glob", "cycle"],
)
def test_bad_needs_are_errors_at_the_item_and_nothing_is_sent(
    tmp_path: Path,
    emulator: EmulatorProcess,
    text: str,
    at: tuple[str, ...],
    named: tuple[str, ...],
) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(text)
    report = tmp_path / "report.jsonl"
    # a cycle may be reported at any of its needs items, but at one of them
    prefixes = tuple(f"{manifest}:{line}:{col}: " for line, col in item_positions(text, *at))
    for args in (("validate", str(manifest)), ("run", str(manifest), "--report", str(report))):
        done = batchrun(emulator, *args, *FAST[2:])
        assert done.code == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith(prefixes)]
        assert errors, f"no error at {prefixes} in:\n{done.stderr}"
        for word in named:
            assert word in errors[0], (word, errors[0])
        assert "nothing was sent" in done.stderr
    stats = emulator.stats()
    assert "createRun" not in stats["requests"]
    assert stats["runs_created"] == 0
    assert not report.exists() or not report.read_text()


# --- dates, needs paired day by day -----------------------------------------------------------


DAYS = ("2026-11-03", "2026-11-04", "2026-11-05")
DATED = (
    "version: 1\ndefaults: {parameters: {run_date: replaced, region: eu}}\nruns:\n"
    + "  - id: build\n"
    + MARTS_FIELDS
    + "    pipeline: BuildDay\n"
    + '    dates: {from: "2026-11-03", to: "2026-11-05", parameter: run_date}\n'
    + "    needs: [load]\n"
    + f"  - id: load\n    subscription: {SUB_A}\n    resource_group: rg-data\n"
    + "    factory: ingest\n    pipeline: LoadDay\n"
    + '    dates: {from: "2026-11-03", to: "2026-11-05", step: 1d, parameter: run_date}\n'
)


def test_dated_needs_pair_day_by_day(tmp_path: Path, emulator: EmulatorProcess) -> None:
    done = run_cli(tmp_path, emulator, DATED, *FAST)
    assert done.code == 0, done.stderr[-3000:]
    triggers = only_trigger(done.report)
    assert set(triggers) == {f"{entry}.{day}" for entry in ("load", "build") for day in DAYS}
    # build.D needs load.D only
    assert_created_after_needs_ended(
        done.report, emulator, {f"build.{day}": [f"load.{day}"] for day in DAYS}
    )
    runs = adf_runs(emulator)
    for run, line in triggers.items():
        parameters = runs[line["run_id"]]["parameters"]
        assert parameters["run_date"] == run.partition(".")[2]  # the date, in its parameter
        assert parameters["region"] == "eu"
    # LoadDay runs one at a time: the day whose load ended first had its build created before
    # the last load ended (had build.D waited for every load, it could not have)
    ends = {day: time_of(runs[triggers[f"load.{day}"]["run_id"]]["runEnd"]) for day in DAYS}
    first = min(DAYS, key=ends.__getitem__)
    first_build = time_of(runs[triggers[f"build.{first}"]["run_id"]]["runStart"])
    assert first_build < max(ends.values()), (first, first_build, ends)
    assert emulator.stats()["runs_created"] == 2 * len(DAYS)


# --- the README's worked examples ----------------------------------------------------------------


def readme_manifests() -> list[str]:
    """The YAML blocks of the README's "Nights with an order" section, in order."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "\n## Nights with an order\n" in readme, "the README has no 'Nights with an order'"
    section = readme.split("\n## Nights with an order\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_examples_are_valid_and_run_in_the_order_it_says(tmp_path: Path) -> None:
    nightly, backfill = readme_manifests()
    env = {**os.environ, "RUN_DATE": "2026-11-26"}

    path = tmp_path / "nightly.yaml"
    path.write_text(nightly)
    valid = batchrun_offline("validate", str(path), "--log-level", "warning", env=env)
    assert valid.returncode == 0, valid.stderr
    (chain,) = [line for line in valid.stdout.splitlines() if "longest chain" in line.lower()]
    assert re.search(r"loads\.\w+.*mart\.\w+.*exports\.\w+", chain), chain
    dry = batchrun_offline("run", str(path), "--dry-run", "--log-level", "warning", env=env)
    assert dry.returncode == 0, dry.stderr
    order = [line.split("\t")[0] for line in dry.stdout.splitlines()]
    loads = [f"loads.{p}" for p in ("LoadOrders", "LoadCustomers", "LoadStock")]
    exports = ["exports.ExportSales", "exports.ExportStock"]
    assert sorted(order) == sorted([*loads, "mart.sales", "mart.stock", *exports])
    assert max(order.index(run) for run in loads) < order.index("mart.sales")
    assert order.index("loads.LoadStock") < order.index("mart.stock")
    assert max(order.index(m) for m in ("mart.sales", "mart.stock")) < min(
        map(order.index, exports)
    )

    path = tmp_path / "backfill.yaml"
    path.write_text(backfill)
    dry = batchrun_offline("run", str(path), "--dry-run", "--log-level", "warning", env=env)
    assert dry.returncode == 0, dry.stderr
    rows = [line.split("\t") for line in dry.stdout.splitlines()]
    order = [row[0] for row in rows]
    assert len(order) == 60
    assert order.index("load.2026-10-05") < order.index("build.2026-10-05")
    assert {"load.2026-10-05", "load.2026-11-03", "build.2026-11-03"} <= set(order)
    bodies = {row[0]: json.loads(row[3]) for row in rows}
    assert bodies["build.2026-10-31"]["run_date"] == "2026-10-31"
