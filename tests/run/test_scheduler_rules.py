"""The scheduler's bookkeeping, in-process against a scripted ADF: the journal, a resumed
batch's intents and claims, the line's fields, the log line per run, the progress counters and
fairness between subscriptions. Written from the survivors of mutation testing
(tests/MUTATION.md); the scenarios themselves are in test_scheduler.py and test_reconcile.py.
"""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from batchrun import log
from batchrun.arm.retry import RetrySettings
from batchrun.errors import ApiError
from batchrun.model import RunSpec
from batchrun.report.writer import ReportWriter
from batchrun.run.journal import BatchIdentity, Journal, journal_path, read_intents
from batchrun.run.progress import Progress
from batchrun.run.reconcile import RECONCILE_FAILED, ReconcileSettings
from batchrun.run.scheduler import Scheduler, SchedulerSettings
from tests.helpers.fake_adf import ScriptedAdf
from tests.helpers.scheduling import report_lines

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

RETRY = RetrySettings(max_attempts=3, backoff_initial_s=0.001, backoff_max_s=0.002)
LOOK = ReconcileSettings(window_s=0.05, first_poll_s=0.001, max_poll_s=0.002)
IDENTITY = BatchIdentity("f" * 64, "nightly.yaml", None)


def spec(spec_id: str, *, subscription: str = "sub-a", n: int = 0) -> RunSpec:
    return RunSpec(spec_id, subscription, "rg", "factory-a", "LoadOrders", {"n": n})


async def run(
    tmp_path: Path,
    adf: ScriptedAdf,
    specs: list[RunSpec],
    *,
    concurrency: int = 4,
    retry: RetrySettings = RETRY,
    journal: bool = False,
    **resumed: Any,
) -> tuple[list[dict[str, Any]], Progress]:
    report = tmp_path / "report.jsonl"
    progress = Progress(total=len(specs))
    settings = SchedulerSettings(concurrency=concurrency, retry=retry, reconcile=LOOK)
    with ReportWriter.open(report, resume=False) as writer:
        opened = Journal.open(report, IDENTITY, resume=False) if journal else None
        scheduler = Scheduler(
            trigger=adf,
            writer=writer,
            settings=settings,
            progress=progress,
            reader=adf,
            journal=opened,
            **resumed,
        )
        await scheduler.run(specs)
        if opened is not None:
            opened.close()
    return report_lines(report), progress


# --- the journal, and what a resumed batch brings -------------------------------------------


async def test_each_run_has_its_intent_in_the_journal_before_its_request_leaves(
    tmp_path: Path,
) -> None:
    journal = journal_path(tmp_path / "report.jsonl")
    seen: dict[str, list[dict[str, Any]]] = {}

    def before_send(run_spec: RunSpec, client_request_id: str) -> None:
        lines = [json.loads(line) for line in journal.read_text().splitlines()]
        seen[client_request_id] = [line for line in lines if line.get("id") == run_spec.id]

    adf = ScriptedAdf({"b": ["503"]}, before_send=before_send)
    await run(tmp_path, adf, [spec("a"), spec("b", n=1)], journal=True)
    assert [send[0] for send in adf.sends].count("b") == 2
    for spec_id, request_id in adf.sends:
        (intent,) = seen[request_id]  # one intent per run, not one per attempt
        assert (intent["type"], intent["id"]) == ("intent", spec_id)
        uuid.UUID(intent["request_id"])  # the first attempt's x-ms-client-request-id
    first_request = dict(reversed(adf.sends))
    assert {k: v[0]["request_id"] for k, v in seen.items()} == {
        rid: first_request[sid] for sid, rid in adf.sends
    }
    assert set(read_intents(journal, IDENTITY)) == {"a", "b"}


async def test_a_resumed_intent_is_looked_up_before_anything_is_posted(tmp_path: Path) -> None:
    adf = ScriptedAdf()
    crashed = adf.add_run(spec("a"))  # created by the process that died before its answer
    intents = {"a": datetime.now(UTC)}
    (line,), progress = await run(tmp_path, adf, [spec("a")], intents=intents)
    assert adf.sends == []
    assert (line["status"], line["run_id"], line["reconciled"]) == ("succeeded", crashed, True)
    assert (progress.reconciled, progress.reads) == (1, adf.queries)


async def test_a_claimed_run_of_the_resumed_report_is_not_found_again(tmp_path: Path) -> None:
    adf = ScriptedAdf()
    twin = adf.add_run(spec("a"))  # the run of an identical entry, already in the report
    intents = {"a": datetime.now(UTC)}
    (line,), _ = await run(tmp_path, adf, [spec("a")], intents=intents, claimed={twin})
    assert adf.created("a") == [line["run_id"]]
    assert line["run_id"] != twin
    assert "reconciled" not in line


# --- the line and the log line ----------------------------------------------------------------


async def test_the_line_carries_the_answers_ids(tmp_path: Path) -> None:
    adf = ScriptedAdf()
    (line,), _ = await run(tmp_path, adf, [spec("a")])
    run_id = adf.created("a")[0]
    assert (line["run_id"], line["http_status"]) == (run_id, 200)
    assert (line["request_id"], line["correlation_id"]) == (f"req-{run_id}", f"corr-{run_id}")


async def test_an_answered_run_is_never_found_for_its_identical_twin(tmp_path: Path) -> None:
    # the twin's answer is lost: the only run it may be is its own, not the one answered first
    adf = ScriptedAdf({"b": ["drop"]})
    lines, _ = await run(tmp_path, adf, [spec("a"), spec("b")], concurrency=1)
    by_id = {line["id"]: line["run_id"] for line in lines}
    assert by_id == {"a": adf.created("a")[0], "b": adf.created("b")[0]}


async def test_retries_run_out_after_a_lost_answer_and_the_run_is_found(tmp_path: Path) -> None:
    adf = ScriptedAdf({"a": ["drop"]})
    (line,), _ = await run(tmp_path, adf, [spec("a")], retry=RetrySettings(max_attempts=1))
    assert (line["status"], line["reconciled"]) == ("succeeded", True)
    assert line["run_id"] == adf.created("a")[0]


async def test_retries_run_out_and_adf_cannot_be_asked(tmp_path: Path) -> None:
    refused = ApiError(status=403, code="AuthorizationFailed", message="no read")
    adf = ScriptedAdf({"a": ["drop"]}, read_error=refused)
    (line,), _ = await run(tmp_path, adf, [spec("a")], retry=RetrySettings(max_attempts=1))
    assert line["status"] == "failed"
    assert line["error"]["code"] == RECONCILE_FAILED
    assert line["http_status"] == 403


async def test_a_request_that_never_left_is_posted_again_without_a_look(tmp_path: Path) -> None:
    adf = ScriptedAdf({"a": ["refused"]})
    (line,), progress = await run(tmp_path, adf, [spec("a")])
    assert (line["status"], line["attempts"]) == ("succeeded", 2)
    assert adf.queries == progress.reads == 0
    assert "reconciled" not in line


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    log.configure(fmt="json", level="debug", stream=stream)
    yield stream
    structlog.reset_defaults()


async def test_one_log_line_per_run_and_one_per_retry(tmp_path: Path, logged: io.StringIO) -> None:
    adf = ScriptedAdf({"a": ["refused"]})
    failing = ScriptedAdf({"b": ["503"] * 5}, read_error=None)
    for name in ("1", "2"):
        (tmp_path / name).mkdir()
    await run(tmp_path / "1", adf, [spec("a")])
    await run(tmp_path / "2", failing, [spec("b")], retry=RetrySettings(max_attempts=1))
    events = [json.loads(line) for line in logged.getvalue().splitlines()]
    retry, finished_a, finished_b = (e for e in events if e["event"].startswith("run."))
    assert {k: retry[k] for k in ("event", "attempt", "status", "code")} == {
        "event": "run.retry", "attempt": 1, "status": None, "code": "ClientConnectorError",
    }  # fmt: skip
    assert 0 <= retry["wait_s"] <= 0.002
    run_id = adf.created("a")[0]
    assert {k: v for k, v in finished_a.items() if k not in ("timestamp", "duration_ms")} == {
        "event": "run.finished", "level": "info", "id": "a", "factory": "factory-a",
        "pipeline": "LoadOrders", "status": "succeeded", "run_id": run_id, "attempts": 2,
        "http_status": 200, "error_code": None, "error_message": None,
    }  # fmt: skip
    assert isinstance(finished_a["duration_ms"], int)
    assert (finished_b["status"], finished_b["error_code"]) == ("failed", "ServiceUnavailable")
    assert finished_b["error_message"] == "m"


# --- counters and fairness --------------------------------------------------------------------


async def test_the_progress_counts_add_up(tmp_path: Path) -> None:
    adf = ScriptedAdf({"r1": ["429"], "r2": ["drop"]})
    specs = [spec(f"r{n}", n=n) for n in range(6)]
    _, progress = await run(tmp_path, adf, specs, concurrency=3)
    assert (progress.done, progress.succeeded, progress.in_flight) == (6, 6, 0)
    assert (progress.throttled, progress.reconciled) == (1, 1)
    assert progress.reads == adf.queries >= 1


async def test_a_freed_slot_goes_to_the_next_subscription_in_turn(tmp_path: Path) -> None:
    adf = ScriptedAdf()
    specs = [spec(f"a{n}", n=n) for n in range(4)] + [spec("b0", subscription="sub-b")]
    await run(tmp_path, adf, specs, concurrency=1)
    # b0 is listed last, queued behind a1: it goes third, not fifth
    assert [spec_id for spec_id, _ in adf.sends] == ["a0", "a1", "b0", "a2", "a3"]
