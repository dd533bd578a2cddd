"""``batchrun recover`` then ``batchrun run``, as subprocesses, against the emulator seeded with
a run history (``--history``)."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from batchrun.manifest.loader import load_manifest
from tests.helpers.cli import CliResult, answers, batchrun, start, start_configured
from tests.helpers.recovery_history import FACTORIES, SUB_A, History, build_history, expected_specs

if TYPE_CHECKING:
    from pathlib import Path

    from batchrun.emulator.process import EmulatorProcess
    from batchrun.model import RunSpec
    from tests.helpers.emulator import StartEmulator

pytestmark = pytest.mark.e2e


def scope_yaml(factories: Any = FACTORIES) -> str:
    entries = "".join(
        f"  - {{subscription: {f.subscription}, resource_group: {f.resource_group}, "
        f"factory: {f.factory}}}\n"
        for f in factories
    )
    return f"version: 1\nfactories:\n{entries}"


def window_args(history: History) -> list[str]:
    return [
        "--since", history.since.strftime("%Y-%m-%dT%H:%MZ"),
        "--until", history.until.strftime("%Y-%m-%dT%H:%M:%SZ"),
    ]  # fmt: skip


@dataclass
class Seeded:
    emulator: EmulatorProcess
    history: History
    scope: Path
    cwd: Path

    def recover(self, *args: str) -> CliResult:
        return batchrun(
            self.emulator, "recover", "--scope", str(self.scope), *window_args(self.history),
            *args, cwd=self.cwd,
        )  # fmt: skip

    def get_run(self, spec: RunSpec, run_id: str) -> dict[str, Any]:
        url = (
            f"{self.emulator.url}/subscriptions/{spec.subscription}/resourceGroups/"
            f"{spec.resource_group}/providers/Microsoft.DataFactory/factories/{spec.factory}"
            f"/pipelineruns/{run_id}?api-version=2018-06-01"
        )
        request = urllib.request.Request(url, headers={"Authorization": "Bearer e2e"})
        with urllib.request.urlopen(request, timeout=10) as response:
            run: dict[str, Any] = json.load(response)
        return run

    def query_answers(self) -> dict[str, int]:
        return answers(self.emulator, "queryPipelineRuns")


def seed(tmp_path: Path, start_emulator: StartEmulator, history: History) -> Seeded:
    path = history.write(tmp_path / "history.json")
    emulator = start(
        start_emulator, "--accept-any", "--history", str(path),
        "--read-burst", "100000", "--quiet",
        "--single-run-group-filter",  # ADF's 400 for a RunGroupId filter of several values
    )  # fmt: skip
    scope = tmp_path / "scope.yaml"
    scope.write_text(scope_yaml())
    return Seeded(emulator, history, scope, tmp_path)


@pytest.fixture
def seeded(tmp_path: Path, start_emulator: StartEmulator) -> Seeded:
    return seed(tmp_path, start_emulator, build_history(datetime.now(UTC)))


def test_recover_writes_the_manifest_and_run_reruns_each_group_in_place(seeded: Seeded) -> None:
    result = seeded.recover("-o", "recovery.yaml")
    assert result.code == 0, result.stderr
    expected = seeded.history.expected()
    manifest = load_manifest(seeded.cwd / "recovery.yaml", environ={})
    assert list(manifest.runs) == expected_specs(expected.recover)
    assert f"wrote recovery.yaml: {len(expected.recover)} runs to recover" in result.stdout
    assert f"skipped {len(expected.skipped)} groups:" in result.stdout
    assert "rerun already succeeded" in result.stdout

    first = batchrun(
        seeded.emulator, "run", "recovery.yaml", "--report", "first.jsonl", cwd=seeded.cwd
    )
    assert first.code == 0, first.stderr
    lines = [json.loads(line) for line in (seeded.cwd / "first.jsonl").read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(spec.id for spec in manifest.runs)
    assert {line["status"] for line in lines} == {"succeeded"}
    by_id = {spec.id: spec for spec in manifest.runs}
    for line in lines:
        spec = by_id[line["id"]]
        assert spec.reference_run_id is not None
        reference = seeded.get_run(spec, spec.reference_run_id)
        rerun = seeded.get_run(spec, line["run_id"])
        assert rerun["runGroupId"] == reference["runGroupId"]
        assert (rerun["isLatest"], reference["isLatest"]) == (True, False)
    assert seeded.emulator.stats()["runs_created"] == len(manifest.runs)


def test_recover_decides_hundreds_of_rerun_groups_in_a_few_reads(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    seeded = seed(tmp_path, start_emulator, build_history(datetime.now(UTC), reruns=300))
    result = seeded.recover("-o", "recovery.yaml")
    assert result.code == 0, result.stderr
    expected = seeded.history.expected()
    assert len(expected.skipped) + len(expected.recover) > 300
    manifest = load_manifest(seeded.cwd / "recovery.yaml", environ={})
    assert list(manifest.runs) == expected_specs(expected.recover)
    assert f"skipped {len(expected.skipped)} groups:" in result.stdout
    answers = seeded.query_answers()
    assert set(answers) == {"200"}, answers
    assert answers["200"] <= 20, answers


def test_running_the_same_recovery_manifest_again_reruns_nothing(seeded: Seeded) -> None:
    assert seeded.recover("-o", "recovery.yaml").code == 0
    count = len(load_manifest(seeded.cwd / "recovery.yaml", environ={}).runs)
    for report in ("first.jsonl", "second.jsonl"):
        done = batchrun(seeded.emulator, "run", "recovery.yaml", "--report", report,
                        cwd=seeded.cwd)  # fmt: skip
        assert done.code == 0, done.stderr
    assert seeded.emulator.stats()["runs_created"] == count
    text = (seeded.cwd / "second.jsonl").read_text().splitlines()
    lines = [json.loads(line) for line in text]
    assert len(lines) == count
    assert {line["status"] for line in lines} == {"skipped"}
    assert all("exists in the group" in line["reason"] for line in lines)


def test_an_existing_output_is_refused_before_anything_is_searched(seeded: Seeded) -> None:
    (seeded.cwd / "recovery.yaml").write_text("# reviewed yesterday\n")
    result = seeded.recover("-o", "recovery.yaml")
    assert result.code == 2
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert (seeded.cwd / "recovery.yaml").read_text() == "# reviewed yesterday\n"
    assert seeded.query_answers() == {}
    forced = seeded.recover("-o", "recovery.yaml", "--force")
    assert forced.code == 0, forced.stderr
    assert load_manifest(seeded.cwd / "recovery.yaml", environ={}).runs


def test_a_bad_scope_file_exits_2_with_its_position(seeded: Seeded) -> None:
    seeded.scope.write_text(
        f"version: 1\nfactories:\n  - subscription: {SUB_A}\n    resource_group: rg-data\n"
        "    factory: sales_eu\n"
    )
    result = seeded.recover("-o", "recovery.yaml")
    assert result.code == 2
    assert f"{seeded.scope}:5:14: factories[0].factory: 'sales_eu' is not a valid" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (seeded.cwd / "recovery.yaml").exists()
    assert seeded.query_answers() == {}


def test_dry_run_prints_the_summary_and_writes_nothing(seeded: Seeded) -> None:
    result = seeded.recover("--dry-run", "-o", "recovery.yaml", "--pipeline", "Load*")
    assert result.code == 0, result.stderr
    expected = seeded.history.expected(pipelines=["Load*"])
    assert f"dry run: {len(expected.recover)} runs would be recovered" in result.stdout
    assert "LoadOrders" in result.stdout and "BuildMarts" not in result.stdout
    written = {p.name for p in seeded.cwd.iterdir()} - {"history.json", "scope.yaml"}
    assert all(name.startswith("emulator-") for name in written), written
    assert seeded.query_answers().get("200", 0) > 0


def test_bad_times_exit_2(seeded: Seeded) -> None:
    result = batchrun(
        seeded.emulator, "recover", "--scope", str(seeded.scope), "--since", "2026-11-25T22:00",
        "-o", "recovery.yaml", cwd=seeded.cwd,
    )  # fmt: skip
    assert result.code == 2
    assert "has no time zone" in result.stderr


def test_a_factory_that_does_not_exist_exits_1_and_writes_nothing(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    present = FACTORIES[0]
    topology = (
        f"subscriptions:\n  {present.subscription}:\n    resource_groups:\n"
        f"      {present.resource_group}:\n        factories:\n"
        f"          {present.factory}: {{pipelines: [LoadOrders]}}\n"
    )
    emulator = start_configured(start_emulator, tmp_path, topology)
    scope = tmp_path / "scope.yaml"
    scope.write_text(scope_yaml(FACTORIES[:2]))
    result = batchrun(
        emulator, "recover", "--scope", str(scope), "--since", "2026-11-25T22:00Z",
        "-o", "recovery.yaml", cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 1
    assert f"{FACTORIES[1]}: HTTP 404 ResourceNotFound" in result.stdout
    assert "nothing was written" in result.stderr
    assert not (tmp_path / "recovery.yaml").exists()


def test_no_token_exits_3_and_searches_nothing(seeded: Seeded) -> None:
    result = batchrun(
        seeded.emulator, "recover", "--scope", str(seeded.scope), "--since", "2026-11-25T22:00Z",
        "-o", "recovery.yaml", cwd=seeded.cwd, identity_header="not-the-secret",
    )  # fmt: skip
    assert result.code == 3
    assert "authentication failed" in result.stderr
    assert seeded.query_answers() == {}


def test_a_since_older_than_adfs_retention_is_warned_about_and_the_search_still_runs(
    seeded: Seeded,
) -> None:
    since = (datetime.now(UTC) - timedelta(days=50)).strftime("%Y-%m-%dT%H:%MZ")
    result = batchrun(
        seeded.emulator, "recover", "--scope", str(seeded.scope), "--since", since,
        "--dry-run", cwd=seeded.cwd,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "batchrun: warning:" in result.stderr and "45" in result.stderr
    assert seeded.query_answers().get("200", 0) > 0


def test_a_recent_since_gets_no_retention_warning(seeded: Seeded) -> None:
    result = seeded.recover("--dry-run")
    assert result.code == 0, result.stderr
    assert "retention" not in result.stderr
