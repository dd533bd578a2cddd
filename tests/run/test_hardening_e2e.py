"""Nothing lost, nothing twice, end to end: a token endpoint that goes down, a 200 without a
runId, a stop while runs wait for a slot, a 429 asking for days, an endpoint that never answers,
and a recovery entry whose rerun reconciliation cannot match."""

from __future__ import annotations

import json
import signal
import socket
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers.child import start_child
from tests.helpers.cli import (
    SUB_A,
    StartEmulator,
    batchrun,
    create_answers,
    manifest_text,
    run_cli,
    start,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e

FACTORY_PATH = (
    f"/subscriptions/{SUB_A}/resourceGroups/rg-data/providers/Microsoft.DataFactory"
    "/factories/factory-0"
)


def succeeded_once_each(lines: list[dict[str, Any]], count: int) -> None:
    ids = Counter(line["id"] for line in lines if line["status"] == "succeeded")
    assert len(ids) == count
    assert set(ids.values()) == {1}


def test_a_token_endpoint_that_goes_down_mid_batch_stops_it_and_resume_finishes(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    arm = start(start_emulator, "--accept-any", "--quiet", "--write-burst", "5000",
                "--latency-ms", "20")  # fmt: skip
    # tokens live 2 s, and after the first one the identity endpoint drops every connection
    failing = start(start_emulator, "--accept-any", "--token-ttl-s", "2",
                    "--identity-fail-after", "1")  # fmt: skip
    result = run_cli(tmp_path, arm, manifest_text(600), "--concurrency", "4", identity=failing)
    assert result.code == 3, result.stderr[-3000:]
    assert "NoToken" in result.stderr
    assert "Task exception was never retrieved" not in result.stderr
    first = result.lines()
    created = arm.stats()["runs_created"]
    # every run sent has its line: nothing sent without one, nothing lost
    assert 0 < len(first) == created < 600
    assert {line["status"] for line in first} == {"succeeded"}

    resumed = run_cli(tmp_path, arm, manifest_text(600), "--resume")
    assert resumed.code == 0, resumed.stderr[-3000:]
    succeeded_once_each(resumed.lines(), 600)
    stats = arm.stats()
    assert (stats["runs_created"], stats["duplicates"]) == (600, 0)


def test_a_200_without_a_run_id_is_looked_for_not_posted_again(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(
        start_emulator, "--accept-any", "--seed", "3", "--garbled-after-create", "0.3",
        "--visibility-delay-ms", "500",
    )  # fmt: skip
    result = run_cli(tmp_path, emulator, manifest_text(40), "--reconcile-window", "5")
    assert result.code == 0, result.stderr[-2000:]
    lines = result.lines()
    succeeded_once_each(lines, 40)
    stats = emulator.stats()
    assert (stats["runs_created"], stats["duplicates"]) == (40, 0)
    # the runs whose answer was the page were found in ADF, not posted again
    assert sum(1 for line in lines if line.get("reconciled")) > 0


def test_after_sigterm_only_the_requests_on_the_wire_are_sent(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    # every answer stalls: two requests are on the wire, and the pacer (which lets four go
    # before any answer) has already passed two more that wait for a slot
    emulator = start(
        start_emulator, "--accept-any", "--quiet", "--write-burst", "5000",
        "--stall-after-create", "1.0", "--stall-ms", "2000",
    )  # fmt: skip
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text(50))
    report = tmp_path / "report.jsonl"
    with start_child(emulator, manifest, "--report", str(report), "--concurrency", "2") as child:
        child.wait_until(lambda: emulator.stats()["in_flight"] >= 2, "two requests in flight")
        child.signal(signal.SIGTERM)
        exit_code = child.finish()
    stderr = child.stderr
    assert exit_code == 143, stderr[-2000:]
    assert sum(create_answers(emulator).values()) == 2
    assert len([json.loads(line) for line in report.read_text().splitlines()]) == 2
    journal = (tmp_path / "report.jsonl.journal").read_text()
    assert journal.count('"intent"') == 2  # no intent for the runs never sent


@pytest.mark.parametrize("retry_after", ["999999", "Thu, 01 Jan 2099 00:00:00 GMT"])
def test_a_429_asking_for_days_fails_the_run_within_the_retry_budget(
    tmp_path: Path, start_emulator: StartEmulator, retry_after: str
) -> None:
    emulator = start(
        start_emulator, "--accept-any", "--write-burst", "3", "--write-refill", "0.001",
        "--throttle-retry-after", retry_after,
    )  # fmt: skip
    result = run_cli(tmp_path, emulator, manifest_text(8), "--max-retry-time", "5")
    assert result.code == 1, result.stderr[-2000:]
    lines = result.lines()
    assert len(lines) == 8
    failed = [line for line in lines if line["status"] == "failed"]
    assert failed
    assert {line["error"]["code"] for line in failed} == {"SubscriptionRequestsThrottled"}
    # one run got the 429; the others, which would have had to wait for days, were not sent
    assert 429 in {line["http_status"] for line in failed}
    assert sum(create_answers(emulator).values()) <= 8


def test_an_endpoint_that_refuses_every_connection_stops_the_batch_at_once(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    identity = start(start_emulator, "--accept-any")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text(2000))
    report = tmp_path / "report.jsonl"
    done = batchrun(
        identity, "run", str(manifest), "--report", str(report),
        "--endpoint", f"http://127.0.0.1:{closed}",
    )  # fmt: skip
    assert done.code == 4, done.stderr[-2000:]
    message = [line for line in done.stderr.splitlines() if "never answered" in line]
    assert len(message) == 1
    assert "--resume" in message[0]
    assert "Traceback" not in done.stderr
    assert not report.exists() or report.read_text() == ""
    # it stopped early: a handful of connection attempts, not 2,000 runs' retries
    retries = [line for line in done.stderr.splitlines() if '"run.retry"' in line]
    assert len(retries) < 100


def test_a_recovery_rerun_reconciliation_cannot_match_is_found_by_the_guard(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    reference = "2f7fdb90-5df1-4b8e-ac2f-064cfa58202b"
    started = datetime.now(UTC) - timedelta(hours=2)
    history = tmp_path / "history.json"
    history.write_text(json.dumps([{
        "factory": FACTORY_PATH, "pipelineName": "LoadOrders", "runId": reference,
        "status": "Failed", "runStart": started.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
        "runEnd": (started + timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
        "parameters": {"partition": 7},
    }]))  # fmt: skip
    # the rerun's answer is lost, and ADF reports the rerun as not invoked manually: the
    # reference's isLatest is then the only sign that our rerun exists
    emulator = start(
        start_emulator, "--accept-any", "--history", str(history),
        "--drop-after-create", "1.0", "--rerun-invoked-by", "Rerun",
    )  # fmt: skip
    manifest = (
        f"version: 1\nruns:\n  - {{id: rerun, subscription: {SUB_A}, resource_group: rg-data, "
        f"factory: factory-0, pipeline: LoadOrders, reference_run_id: {reference}, "
        "is_recovery: true, start_from_failure: true}\n"
    )
    result = run_cli(tmp_path, emulator, manifest, "--reconcile-window", "1")
    assert result.code == 0, result.stderr[-2000:]
    (line,) = result.lines()
    assert (line["status"], line["reconciled"]) == ("succeeded", True)
    stats = emulator.stats()
    assert (stats["runs_created"], stats["duplicates"]) == (1, 0)
