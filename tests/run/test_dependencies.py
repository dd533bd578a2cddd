"""Runs with an order, in-process against the emulator: a dependent is triggered only once
every run it needs ended Succeeded (checked against the emulator's own run times), and is
skipped, transitively, when one did not; a stop stops the chain; a resume goes on with it.

The emulator's ManualClock starts now and moves only when the monitor sleeps, so a run's times
in ADF say when, in the night's own time, it was created and when it ended."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from batchrun.arm.retry import RetrySettings
from batchrun.emulator.clock import ManualClock
from batchrun.manifest.loader import Manifest
from batchrun.model import RunSpec
from batchrun.report.summary import summarize
from batchrun.run import runner
from batchrun.run.following import FollowSettings
from batchrun.run.journal import BatchIdentity, journal_path
from batchrun.run.missing import OnlyMissing
from batchrun.run.runner import BatchOutcome, BatchSettings, HandedRuns, run_batch
from batchrun.times import parse_time
from tests.helpers.emulator import emulator_config
from tests.helpers.emulator_http import RG, SUB, Adf, topology
from tests.helpers.scheduling import report_lines
from tests.helpers.tokens import StaticTokens

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    import aiohttp

    from tests.helpers.emulator import InProcessEmulator, ServeEmulator

OTHER_SUB = "22222222-2222-2222-2222-222222222222"
CONFIG = emulator_config(
    {
        (SUB, RG, "loads"): """
            Load: {}
            LoadBroken: {failure_rate: 1.0}
            LoadSlow: {duration_ms: 600000}
        """,
        (OTHER_SUB, RG, "marts"): "Build: {}\nExport: {}",
    }
)
WHERE = {
    **dict.fromkeys(("Load", "LoadBroken", "LoadSlow", "Missing"), SUB),
    **dict.fromkeys(("Build", "Export"), OTHER_SUB),
}
FACTORY = {SUB: "loads", OTHER_SUB: "marts"}
FAST_RETRY = RetrySettings(max_attempts=3, max_seconds=60, backoff_initial_s=0.01)


def run(run_id: str, pipeline: str) -> RunSpec:
    subscription = WHERE[pipeline]
    return RunSpec(run_id, subscription, RG, FACTORY[subscription], pipeline, {"id": run_id})


class Night:
    """One report, batches run on it in-process; the monitor's sleeps move the emulator's clock."""

    def __init__(
        self, served: InProcessEmulator, session: aiohttp.ClientSession, tmp_path: Path
    ) -> None:
        self.served = served
        self.adf = Adf(session, served.url)
        self.report = tmp_path / "night.jsonl"
        self.on_sleep: Callable[[], None] | None = None

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.served.clock.time(), UTC)

    async def sleep(self, seconds: float) -> None:
        self.served.manual_clock.advance(seconds)
        if self.on_sleep is not None:
            self.on_sleep()
        await asyncio.sleep(0)

    async def run(
        self,
        runs: list[RunSpec],
        needs: Mapping[str, tuple[str, ...]],
        *,
        resume: bool = False,
        wait: bool = False,
        only_missing: OnlyMissing | None = None,
        follow: FollowSettings | None = None,
    ) -> BatchOutcome:
        manifest = Manifest("night.yaml", tuple(runs), (), "fingerprint", needs=needs)
        settings = BatchSettings(
            report=self.report,
            endpoint=self.served.url,
            resume=resume,
            retry=FAST_RETRY,
            grace_s=5.0,
            wait=wait,
            follow=follow or FollowSettings(poll_s=10.0, retry=FAST_RETRY),
            only_missing=only_missing,
        )
        batch = run_batch(
            HandedRuns(manifest), settings, tokens=StaticTokens(), now=self.now, sleep=self.sleep
        )
        # a bound on a hang, never a wait for something to happen
        return await asyncio.wait_for(batch, timeout=30)

    def lines(self) -> list[dict[str, Any]]:
        return report_lines(self.report)

    def last(self) -> dict[str, dict[str, Any]]:
        return {line["id"]: line for line in self.lines()}

    async def in_adf(self) -> dict[str, list[dict[str, Any]]]:
        """ADF's runs (PipelineRun) by manifest id, as the emulator lists them."""
        found: dict[str, list[dict[str, Any]]] = {}
        for subscription, factory in FACTORY.items():
            for adf_run in await self.adf.runs(sub=subscription, factory=factory):
                found.setdefault(adf_run["parameters"]["id"], []).append(adf_run)
        return found

    async def created(self) -> dict[str, int]:
        """How many runs ADF has for each manifest id."""
        return {run_id: len(runs) for run_id, runs in (await self.in_adf()).items()}

    async def started(self, run_id: str) -> datetime:
        (adf_run,) = (await self.in_adf())[run_id]
        return ran_at(adf_run, "runStart")


@pytest.fixture
async def night(
    serve_emulator: ServeEmulator, session: aiohttp.ClientSession, tmp_path: Path
) -> Night:
    # from now: the trigger lines' times (the batch's clock) and ADF's are of the same night
    clock = ManualClock(start=time.time())
    served = await serve_emulator(
        topology(CONFIG), clock=clock, run_queued_ms=1000, run_duration_ms=5000
    )
    return Night(served, session, tmp_path)


def ran_at(line: Mapping[str, Any], key: str) -> datetime:
    moment = parse_time(line[key])
    assert moment is not None, line
    return moment


CHAIN = [run("load", "Load"), run("build", "Build"), run("export", "Export")]
CHAIN_NEEDS = {"build": ("load",), "export": ("build",)}


async def test_a_three_level_chain_across_subscriptions_starts_each_level_after_the_last(
    night: Night,
) -> None:
    outcome = await night.run(CHAIN, CHAIN_NEEDS)

    lines = night.lines()
    assert await night.created() == {"load": 1, "build": 1, "export": 1}
    outcomes = {line["id"]: line for line in lines if "outcome" in line}
    # the needed runs were followed to their end; the last level is needed by nothing
    assert set(outcomes) == {"load", "build"}
    assert {line["outcome"] for line in outcomes.values()} == {"Succeeded"}
    # in ADF's own times: each level was created after the level it needs had ended
    assert await night.started("build") >= ran_at(outcomes["load"], "run_end")
    assert await night.started("export") >= ran_at(outcomes["build"], "run_end")
    # and in the report: a level's trigger line comes after its need's outcome line
    order = [(line["id"], "outcome" in line) for line in lines]
    assert order == [
        ("load", False),
        ("load", True),
        ("build", False),
        ("build", True),
        ("export", False),
    ]
    assert outcome.progress.done == outcome.progress.total == 3
    assert outcome.progress.succeeded == 3 and outcome.progress.blocked == 0


async def test_a_failed_dependency_skips_two_levels_while_another_chain_completes(
    night: Night,
) -> None:
    runs = [
        run("bad", "LoadBroken"),
        run("bad-mart", "Build"),
        run("bad-export", "Export"),
        *CHAIN,
    ]
    needs = {"bad-mart": ("bad",), "bad-export": ("bad-mart",), **CHAIN_NEEDS}
    outcome = await night.run(runs, needs)

    last = night.last()
    assert last["bad"]["outcome"] == "Failed"
    assert last["bad-mart"]["status"] == "skipped"
    assert last["bad-mart"]["reason"] == "needs bad, which ended Failed"
    assert last["bad-mart"]["skipped_because"] == {
        "needs": "bad",
        "root": "bad",
        "root_outcome": "Failed",
    }
    assert last["bad-export"]["reason"] == (
        "needs bad-mart, which was skipped (needs bad, which ended Failed)"
    )
    assert last["bad-export"]["skipped_because"] == {
        "needs": "bad-mart",
        "root": "bad",
        "root_outcome": "Failed",
    }
    assert last["bad-export"]["attempts"] == 0 and last["bad-export"]["run_id"] is None
    # the independent chain went on to its end; the skipped ones were never sent
    assert last["export"]["status"] == "succeeded"
    assert await night.created() == {"bad": 1, "load": 1, "build": 1, "export": 1}
    assert outcome.progress.blocked == 2 and outcome.progress.skipped == 2
    assert outcome.progress.done == outcome.progress.total == 6


async def test_a_slow_chain_does_not_hold_up_an_independent_one(night: Night) -> None:
    runs = [run("slow", "LoadSlow"), run("slow-mart", "Build"), *CHAIN]
    await night.run(runs, {"slow-mart": ("slow",), **CHAIN_NEEDS})

    last = night.last()
    slow_end = ran_at(last["slow"], "run_end")
    # the quick chain went through all its levels while the slow load was still running
    assert await night.started("export") < slow_end
    assert await night.started("slow-mart") >= slow_end
    assert [line["id"] for line in night.lines()][-1] == "slow-mart"


async def test_a_dependency_that_fails_to_trigger_skips_its_dependents(night: Night) -> None:
    runs = [run("missing", "Missing"), run("after", "Build"), run("alone", "Load")]
    outcome = await night.run(runs, {"after": ("missing",)})

    last = night.last()
    assert last["missing"]["status"] == "failed"
    assert last["missing"]["http_status"] == 404
    assert last["after"]["status"] == "skipped"
    assert last["after"]["reason"] == "needs missing, which failed to trigger"
    assert last["after"]["skipped_because"]["root_outcome"] == "failed to trigger"
    assert await night.created() == {"alone": 1}
    assert outcome.progress.failed == 1 and outcome.progress.blocked == 1


async def test_a_run_with_two_needs_waits_for_both(night: Night) -> None:
    runs = [run("a", "Load"), run("b", "Export"), run("joined", "Build")]
    await night.run(runs, {"joined": ("a", "b")})

    ends = [ran_at(line, "run_end") for line in night.lines() if "outcome" in line]
    assert len(ends) == 2
    assert await night.started("joined") >= max(ends)


async def test_wait_follows_every_run_once_along_the_way(night: Night) -> None:
    runs = [*CHAIN, run("solo", "Load")]
    outcome = await night.run(runs, CHAIN_NEEDS, wait=True)

    outcome_lines = Counter(line["id"] for line in night.lines() if "outcome" in line)
    assert outcome_lines == {"load": 1, "build": 1, "export": 1, "solo": 1}
    assert outcome.followed is not None
    assert outcome.followed.outcomes == {"Succeeded": 4}


async def test_a_stop_during_a_chain_triggers_nothing_more_and_a_resume_goes_on(
    night: Night,
) -> None:
    # SIGTERM while the first level is followed (the monitor's first sleep)
    def stop_once() -> None:
        night.on_sleep = None
        signal.raise_signal(signal.SIGTERM)

    night.on_sleep = stop_once
    stopped = await night.run(CHAIN, CHAIN_NEEDS)

    assert stopped.signal is signal.SIGTERM
    assert [(line["id"], "outcome" in line) for line in night.lines()] == [("load", False)]
    assert await night.created() == {"load": 1}

    resumed = await night.run(CHAIN, CHAIN_NEEDS, resume=True)

    # the first level was followed from its trigger line, never triggered again
    assert await night.created() == {"load": 1, "build": 1, "export": 1}
    triggers = Counter(line["id"] for line in night.lines() if "outcome" not in line)
    assert triggers == {"load": 1, "build": 1, "export": 1}
    assert night.last()["load"]["outcome"] == "Succeeded"
    assert resumed.signal is None
    assert resumed.progress.total == 2 and resumed.already_succeeded == 1


async def test_a_resume_after_the_first_level_ended_triggers_only_the_rest_once(
    night: Night,
) -> None:
    # an earlier batch of this manifest triggered the first level and saw it succeed, then died
    load = CHAIN[0]
    adf_id = await night.adf.run_id(load.pipeline, load.parameters, sub=SUB, factory="loads")
    night.served.manual_clock.advance(60)
    ended = (await night.in_adf())["load"][0]
    assert ended["status"] == "Succeeded"
    trigger = {
        "id": "load", "subscription": SUB, "resource_group": RG, "factory": "loads",
        "pipeline": "Load", "status": "succeeded", "run_id": adf_id, "attempts": 1,
        "started_at": ended["runStart"], "finished_at": ended["runStart"],
    }  # fmt: skip
    finished = {**trigger, "outcome": "Succeeded", "run_end": ended["runEnd"]}
    night.report.write_text("".join(json.dumps(line) + "\n" for line in (trigger, finished)))
    identity = BatchIdentity("fingerprint", "night.yaml", None)
    journal_path(night.report).write_text(json.dumps(identity.line()) + "\n")

    outcome = await night.run(CHAIN, CHAIN_NEEDS, resume=True)

    assert await night.created() == {"load": 1, "build": 1, "export": 1}
    triggers = [line["id"] for line in night.lines() if "outcome" not in line]
    assert triggers == ["load", "build", "export"]
    assert await night.started("build") >= ran_at(finished, "run_end")
    assert await night.started("export") >= ran_at(night.last()["build"], "run_end")
    assert outcome.already_succeeded == 1 and outcome.progress.total == 2


async def test_a_resume_decides_a_skipped_dependent_again(night: Night) -> None:
    runs = [run("missing", "Missing"), run("after", "Build")]
    await night.run(runs, {"after": ("missing",)})
    assert night.last()["after"]["status"] == "skipped"

    # the resumed batch triggers the failed run again (it fails again: still no pipeline)
    await night.run(runs, {"after": ("missing",)}, resume=True)

    statuses = [(line["id"], line["status"]) for line in night.lines()]
    assert statuses == [
        ("missing", "failed"),
        ("after", "skipped"),
        ("missing", "failed"),
        ("after", "skipped"),
    ]
    assert await night.created() == {}


async def test_a_refused_token_stops_the_dependents_without_a_line(
    serve_emulator: ServeEmulator, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    served = await serve_emulator(
        topology(CONFIG), clock=ManualClock(start=time.time()), expect_token="another-token"
    )
    night = Night(served, session, tmp_path)
    outcome = await night.run(CHAIN, CHAIN_NEEDS)

    assert outcome.auth_error is not None and outcome.auth_error.status == 401
    # the refused run's line says so; its dependents are left for --resume, with no line
    assert [line["id"] for line in night.lines()] == ["load"]
    assert outcome.progress.blocked == 0


async def test_a_need_found_already_succeeded_lets_its_dependent_start_at_once(
    night: Night, tmp_path: Path
) -> None:
    first = night.report
    # an earlier night: the load, followed to its end because the probe needs it
    await night.run([run("load", "Load"), run("probe", "Export")], {"probe": ("load",)})
    assert night.last()["load"]["outcome"] == "Succeeded"

    night.report = tmp_path / "again.jsonl"
    since = OnlyMissing(since=night.now().replace(year=2000))
    outcome = await night.run(CHAIN, CHAIN_NEEDS, only_missing=since)

    last = night.last()
    assert last["load"]["status"] == "skipped" and last["load"]["already_succeeded"] is True
    assert last["load"]["run_id"] == report_lines(first)[0]["run_id"]
    # the load was not sent again, and what needs it went on as after a Succeeded
    assert await night.created() == {"load": 1, "probe": 1, "build": 1, "export": 1}
    assert last["build"]["outcome"] == "Succeeded"
    assert last["export"]["status"] == "succeeded"
    assert outcome.progress.blocked == 0


async def test_a_run_only_missing_found_is_not_also_reconciled_to_another_entry(
    night: Night,
) -> None:
    # a crashed batch had sent two identical entries (intents, no lines); ADF has the first's run,
    # Succeeded, and the second's, Cancelled since
    same = [run("twin", "Load"), RunSpec("twin-2", SUB, RG, "loads", "Load", {"id": "twin"})]
    # by our clock, as far before the runs as ADF's clock will have moved ahead of ours
    sent_at = datetime.now(UTC) - timedelta(seconds=10)
    first = await night.adf.run_id("Load", {"id": "twin"}, sub=SUB, factory="loads")
    night.served.manual_clock.advance(10)
    second = await night.adf.run_id("Load", {"id": "twin"}, sub=SUB, factory="loads")
    status, body, _ = await night.adf.call(
        "POST", f"/pipelineruns/{second}/cancel", sub=SUB, factory="loads"
    )
    assert status == 200, body
    identity = BatchIdentity("fingerprint", "night.yaml", None)
    intents = [
        {"type": "intent", "id": spec.id, "request_id": spec.id, "at": sent_at.isoformat()}
        for spec in same
    ]
    journal_path(night.report).write_text(
        "".join(json.dumps(line) + "\n" for line in (identity.line(), *intents))
    )

    since = OnlyMissing(since=night.now().replace(year=2000))
    await night.run(same, {}, resume=True, only_missing=since)

    last = night.last()
    assert last["twin"]["already_succeeded"] is True and last["twin"]["run_id"] == first
    # the second entry's own run is found, not the one the first entry already stands for
    assert last["twin-2"]["run_id"] == second
    assert await night.created() == {"twin": 2}


SLOW_CHAIN = [run("slow", "LoadSlow"), run("mart", "Build"), run("exp", "Export")]
SLOW_NEEDS = {"mart": ("slow",), "exp": ("mart",)}


async def test_a_need_timed_out_and_left_running_skips_its_dependents_until_a_resume(
    night: Night,
) -> None:
    follow = FollowSettings(poll_s=10.0, retry=FAST_RETRY, timeout_s=60.0, on_timeout="report")
    timed_out = await night.run(SLOW_CHAIN, SLOW_NEEDS, follow=follow)

    last = night.last()
    assert (last["slow"]["outcome"], last["slow"]["run_status"]) == ("TimedOut", "InProgress")
    assert last["mart"]["skipped_because"]["root_outcome"] == "TimedOut"
    assert last["exp"]["status"] == "skipped"
    assert timed_out.progress.blocked == 2 and timed_out.undecided == 0

    # the load, left running, has ended since: a resume follows it and goes on with the chain
    night.served.manual_clock.advance(700)
    resumed = await night.run(SLOW_CHAIN, SLOW_NEEDS, resume=True)

    assert await night.created() == {"slow": 1, "mart": 1, "exp": 1}
    assert night.last()["slow"]["outcome"] == "Succeeded"
    assert night.last()["exp"]["status"] == "succeeded"
    assert resumed.progress.done == resumed.progress.total == 2


async def test_a_need_cancelled_at_its_timeout_skips_its_dependents(night: Night) -> None:
    follow = FollowSettings(poll_s=10.0, retry=FAST_RETRY, timeout_s=60.0, on_timeout="cancel")
    outcome = await night.run(SLOW_CHAIN, SLOW_NEEDS, follow=follow, wait=True)

    last = night.last()
    assert (last["slow"]["outcome"], last["slow"]["run_status"]) == ("TimedOut", "Cancelled")
    assert last["exp"]["reason"] == (
        "needs mart, which was skipped (needs slow, which ended TimedOut)"
    )
    assert await night.created() == {"slow": 1}
    assert outcome.progress.done == outcome.progress.total == 3


async def test_following_that_gives_up_leaves_the_dependents_to_a_resume(night: Night) -> None:
    runs = [*SLOW_CHAIN, run("solo", "Load")]
    follow = FollowSettings(poll_s=10.0, retry=FAST_RETRY, max_follow_s=60.0)
    gave_up = await night.run(runs, SLOW_NEEDS, follow=follow)

    # no line for what could not be decided: the resume decides it
    assert [line["id"] for line in night.lines() if "outcome" not in line] == ["slow", "solo"]
    assert gave_up.undecided == 2
    assert gave_up.followed is not None and gave_up.followed.unfinished == 1

    night.served.manual_clock.advance(700)
    await night.run(runs, SLOW_NEEDS, resume=True)

    assert await night.created() == {"slow": 1, "mart": 1, "exp": 1, "solo": 1}
    assert night.last()["exp"]["status"] == "succeeded"


async def test_wait_then_a_resume_follow_every_run_once_over_both(night: Night) -> None:
    def stop_once() -> None:
        night.on_sleep = None
        signal.raise_signal(signal.SIGTERM)

    runs = [*CHAIN, run("solo", "Load"), run("solo2", "Export")]
    night.on_sleep = stop_once
    stopped = await night.run(runs, CHAIN_NEEDS, wait=True)
    assert stopped.signal is signal.SIGTERM

    await night.run(runs, CHAIN_NEEDS, wait=True, resume=True)

    lines = night.lines()
    assert Counter(line["id"] for line in lines if "outcome" in line) == dict.fromkeys(
        ("load", "solo", "solo2", "build", "export"), 1
    )
    assert await night.created() == dict.fromkeys(("load", "solo", "solo2", "build", "export"), 1)


async def test_the_night_s_tally_is_the_summary_of_its_report_with_outcome_and_skipped_lines(
    night: Night,
) -> None:
    runs = [run("bad", "LoadBroken"), run("bad-mart", "Build"), *CHAIN]
    outcome = await night.run(runs, {"bad-mart": ("bad",), **CHAIN_NEEDS}, wait=True)
    # every line the batch wrote (trigger, outcome, skipped) was tallied as written
    assert outcome.tally is not None
    assert {"outcome", "skipped_because"} <= {key for line in night.lines() for key in line}
    assert outcome.tally.summary([night.report]) == summarize([night.report])


async def test_a_batch_past_the_tallied_size_reads_its_report_back(
    night: Night, monkeypatch: pytest.MonkeyPatch
) -> None:
    # its summary then comes after the batch is freed, not on top of the batch's peak
    monkeypatch.setattr(runner, "TALLIED_RUNS", len(CHAIN) - 1)
    assert (await night.run(CHAIN, CHAIN_NEEDS)).tally is None
    monkeypatch.setattr(runner, "TALLIED_RUNS", len(CHAIN))
    night.report = night.report.with_name("tallied.jsonl")
    assert (await night.run(CHAIN, CHAIN_NEEDS)).tally is not None
