"""``run --only-missing`` end to end: the real CLI against an emulator process whose runs last
about half a second. The days that already succeeded are made the honest way: an earlier batch
triggers them and follows them to their end (``--wait``), so ADF echoes exactly what was sent."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

import pytest

from tests.helpers.cli import (
    FAST,
    SUB_A,
    StartEmulator,
    batchrun_offline,
    last_lines,
    one_factory,
    requests,
    run_cli,
    start_configured,
)

if TYPE_CHECKING:
    from pathlib import Path

    from batchrun.emulator.process import EmulatorProcess

pytestmark = pytest.mark.e2e

CONFIG = one_factory(
    "LoadOrders: {parameters: [run_date, region]}",
    settings="{run_queued_ms: 100, run_duration_ms: 400, seed: 1}",
)
FIRST_DAY = date(2026, 11, 1)


def backfill(days: range) -> str:
    """One explicit run per day of November 2026, id ``load.<date>``, the date in run_date."""
    head = (
        f"version: 1\ndefaults: {{subscription: {SUB_A}, resource_group: rg-data, "
        "factory: factory-0, pipeline: LoadOrders}\nruns:\n"
    )
    runs = []
    for n in days:
        day = (FIRST_DAY + timedelta(days=n)).isoformat()
        runs.append(f"  - {{id: load.{day}, parameters: {{run_date: '{day}', region: eu}}}}\n")
    return head + "".join(runs)


@pytest.fixture
def emulator(start_emulator: StartEmulator, tmp_path: Path) -> EmulatorProcess:
    return start_configured(start_emulator, tmp_path, CONFIG, "--quiet")


def dated_backfill(days: int) -> str:
    """The same backfill as one entry with ``dates:``: ``load.<date>`` for ``days`` days."""
    last = (FIRST_DAY + timedelta(days=days - 1)).isoformat()
    return (
        f"version: 1\nruns:\n  - id: load\n    subscription: {SUB_A}\n"
        "    resource_group: rg-data\n    factory: factory-0\n    pipeline: LoadOrders\n"
        "    parameters: {region: eu}\n"
        f"    dates: {{from: {FIRST_DAY.isoformat()}, to: {last}, parameter: run_date}}\n"
    )


def test_a_30_day_backfill_triggers_only_the_20_days_not_succeeded(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    # days 1, 4, 7, ... 28 succeeded in an earlier batch
    done_days = range(0, 30, 3)
    first = run_cli(earlier, emulator, backfill(done_days), "--wait", *FAST)
    assert first.code == 0, first.stderr
    succeeded = {i: r["run_id"] for i, r in last_lines(first.report).items()}
    assert len(succeeded) == 10
    assert {r["outcome"] for r in last_lines(first.report).values()} == {"Succeeded"}
    created, queried = requests(emulator, "createRun"), requests(emulator, "queryPipelineRuns")

    # the backfill after the outage: 30 days as one dated entry
    again = run_cli(tmp_path, emulator, dated_backfill(30), "--only-missing", "--wait", *FAST)

    # exit 0: the 20 triggered succeeded, and the 10 skipped had already
    assert again.code == 0, again.stderr
    assert requests(emulator, "createRun") - created == 20
    assert emulator.stats()["duplicates"] == 0
    last = last_lines(again.report)
    skipped = {i: r for i, r in last.items() if r["status"] == "skipped"}
    assert {i: r["run_id"] for i, r in skipped.items()} == succeeded
    for record in skipped.values():
        assert record["already_succeeded"] is True
        assert record["reason"].startswith(f"already succeeded in ADF (run {record['run_id']}, ")
    assert sum(r["status"] == "succeeded" for r in last.values()) == 20
    assert len(last) == 30
    assert {r["id"] for r in last.values()} >= {f"load.{FIRST_DAY.isoformat()}", "load.2026-11-30"}
    assert "--only-missing: 10 of 30 runs had already succeeded in ADF" in again.stderr
    # the search was one read (one factory, 10 runs: one page); the rest is --wait's polling
    assert "(1 reads, 1 factories)" in again.stderr, again.stderr
    assert requests(emulator, "queryPipelineRuns") > queried

    # resuming the finished report sends nothing: a skipped line found succeeded is done
    resumed = run_cli(tmp_path, emulator, dated_backfill(30), "--resume", *FAST)
    assert resumed.code == 0, resumed.stderr
    assert requests(emulator, "createRun") - created == 20


def test_a_search_that_cannot_be_made_sends_nothing(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    broken = start_configured(
        start_emulator, tmp_path, CONFIG, "--quiet", "--fail-500", "1", "--faults-on-reads"
    )
    done = run_cli(tmp_path, broken, backfill(range(3)), "--only-missing", "--max-attempts", "2")
    assert done.code == 1, done.stderr
    assert "--only-missing could not ask ADF which runs already succeeded" in done.stderr
    assert "nothing was sent" in done.stderr
    assert "Traceback" not in done.stderr
    assert requests(broken, "createRun") == 0
    assert requests(broken, "queryPipelineRuns") == 2
    assert not done.report.exists()


def test_a_dry_run_says_it_did_not_search(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(backfill(range(2)))
    done = batchrun_offline("run", str(manifest), "--only-missing", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "ADF was not searched in a dry run" in done.stderr
    assert done.stdout.count("\tPOST\t") == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "7d"), "--since needs --only-missing"),
        (("--only-missing", "--since", "7w"), "is not a duration"),
        (("--only-missing", "--since", "2026-11-25T22:00"), "has no time zone"),
        (("--only-missing", "--since", "2999-01-01T00:00Z"), "is not in the past"),
    ],
)
def test_a_bad_since_is_a_usage_error(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(backfill(range(2)))
    done = batchrun_offline("run", str(manifest), *args, "--dry-run")
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
