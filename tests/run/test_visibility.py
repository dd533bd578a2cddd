"""The visibility window: learned from our own runs' lags, between a floor and the ceiling."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from batchrun.arm.client import QueryResponse, RateLimits
from batchrun.arm.retry import RetrySettings
from batchrun.model import RunSpec
from batchrun.run.reconcile import Reconciler, ReconcileSettings
from batchrun.run.visibility import SampleKey, VisibilityLag, Window, WindowRule
from tests.helpers.timeline import Timeline

KEY: SampleKey = ("sub", "rg", "factory-a", "loadorders")
OTHER: SampleKey = ("sub", "rg", "factory-b", "loadorders")
RULE = WindowRule(percentile=0.95, factor=1.25, floor_s=1.0, min_samples=20, resolution_s=2.0)


def measured(lags: list[float], *, ceiling_s: float = 30.0, rule: WindowRule = RULE) -> Window:
    """A window after each lag was measured tightly: the run created, then read once listed."""
    lag = VisibilityLag(ceiling_s=ceiling_s, rule=rule)
    now = 0.0
    for n, seconds in enumerate(lags):
        lag.created(KEY, f"run-{n}", at=now)
        # a read just before it was listed, and the one that lists it
        lag.read(KEY, [], sent=now + seconds - 0.5, answered=now + seconds - 0.5, covers_from=now)
        lag.read(KEY, [f"run-{n}"], sent=now + seconds, answered=now + seconds, covers_from=now)
        now += 100.0
    return lag.window


def test_until_enough_runs_are_measured_the_window_is_the_ceiling() -> None:
    window = measured([2.0] * 19)
    assert window == Window(seconds=30.0, samples=19, learned=False)
    assert "ceiling" in window.describe()


def test_the_window_is_a_high_percentile_times_the_factor() -> None:
    window = measured([1.0] * 10 + [2.0] * 9 + [3.0])
    # 20 lags: the 95th percentile is the 19th, 2.0 s; times 1.25
    assert window.learned
    assert window.seconds == pytest.approx(2.5)
    assert window.describe() == "visibility window 2.5 s, learned from 20 runs"


@pytest.mark.parametrize(
    ("lags", "ceiling", "expected"),
    [
        ([0.1] * 20, 30.0, 1.0),  # never below the floor
        ([20.0] * 20, 10.0, 10.0),  # never above the ceiling
        ([2.0] * 20, 0.0, 0.0),  # a zero ceiling wins over the floor
    ],
)
def test_the_window_stays_between_the_floor_and_the_ceiling(
    lags: list[float], ceiling: float, expected: float
) -> None:
    assert measured(lags, ceiling_s=ceiling).seconds == pytest.approx(expected)


def test_a_run_first_read_long_after_it_was_made_does_not_count() -> None:
    lag = VisibilityLag(ceiling_s=30.0, rule=RULE)
    lag.created(KEY, "late", at=0.0)
    # the pipeline was not read for 9 s: "listed within 9 s" says little
    lag.read(KEY, ["late"], sent=9.0, answered=9.0, covers_from=0.0)
    lag.created(KEY, "tight", at=10.0)
    lag.read(KEY, ["tight"], sent=11.0, answered=11.5, covers_from=0.0)
    assert lag.window.samples == 1


def test_a_sample_is_matched_only_by_reads_of_its_own_pipeline() -> None:
    lag = VisibilityLag(ceiling_s=30.0, rule=RULE)
    lag.created(KEY, "ours", at=0.0)
    lag.read(OTHER, ["ours"], sent=1.0, answered=1.0, covers_from=0.0)
    assert lag.window.samples == 0
    lag.read(KEY, ["ours"], sent=1.5, answered=1.5, covers_from=0.0)
    assert lag.window.samples == 1


def test_a_sample_overdue_sends_the_window_back_to_the_ceiling_at_once() -> None:
    lag = VisibilityLag(ceiling_s=30.0, rule=RULE)
    for n in range(20):
        lag.created(KEY, f"calm-{n}", at=float(n))
        lag.read(KEY, [f"calm-{n}"], sent=n + 2.0, answered=n + 2.0, covers_from=0.0)
    assert lag.window.learned and lag.window.seconds == pytest.approx(2.5)
    # ADF slows down: a run made at 100 s is still missing from a read sent at 103 s
    lag.created(KEY, "slow", at=100.0)
    lag.read(KEY, [], sent=103.0, answered=103.0, covers_from=0.0)
    assert lag.window == Window(seconds=30.0, samples=20, learned=False)
    # listed at last, 12 s late: its lag counts, however loose, and lifts the window
    lag.read(KEY, ["slow"], sent=112.0, answered=112.0, covers_from=0.0)
    assert lag.window.learned
    assert lag.window.seconds == pytest.approx(2.5)
    for n in range(2):
        lag.created(KEY, f"slow-{n}", at=200.0 + n)
        lag.read(KEY, [], sent=203.0 + n, answered=203.0 + n, covers_from=0.0)
        lag.read(KEY, [f"slow-{n}"], sent=212.0 + n, answered=212.0 + n, covers_from=0.0)
    # 3 of the last 23 lags are 12 s: above the 95th percentile's rank
    assert lag.window.seconds == pytest.approx(12.0 * 1.25)


def test_a_read_that_did_not_reach_back_to_a_sample_does_not_make_it_overdue() -> None:
    lag = VisibilityLag(ceiling_s=30.0, rule=RULE)
    for n in range(20):
        lag.created(KEY, f"calm-{n}", at=float(n))
        lag.read(KEY, [f"calm-{n}"], sent=n + 2.0, answered=n + 2.0, covers_from=0.0)
    lag.created(KEY, "older", at=100.0)
    lag.read(KEY, [], sent=110.0, answered=110.0, covers_from=105.0)
    assert lag.window.learned


def test_a_run_is_held_to_the_learned_window_only_with_fresh_evidence_from_its_pipeline() -> None:
    lag = VisibilityLag(ceiling_s=30.0, rule=RULE)
    for n in range(20):
        lag.created(KEY, f"calm-{n}", at=float(n))
        lag.read(KEY, [f"calm-{n}"], sent=n + 2.0, answered=n + 2.0, covers_from=0.0)
    assert lag.window.seconds == pytest.approx(2.5)
    # the last run listed in time was made at 19 s
    assert lag.seconds_for(KEY, lost_at=21.0) == pytest.approx(2.5)
    # a minute later the pipeline has been quiet: nothing says ADF is still quick
    assert lag.seconds_for(KEY, lost_at=80.0) == 30.0
    # nor does anything say so for another pipeline
    assert lag.seconds_for(OTHER, lost_at=21.0) == 30.0


def test_samples_are_bounded_and_forgotten_after_twice_the_ceiling() -> None:
    lag = VisibilityLag(ceiling_s=10.0, rule=WindowRule(pending=2, min_samples=1))
    lag.created(KEY, "a", at=0.0)
    lag.created(KEY, "b", at=0.0)
    lag.created(KEY, "c", at=0.0)  # no room: not sampled
    lag.read(KEY, ["c"], sent=1.0, answered=1.0, covers_from=0.0)
    assert lag.window.samples == 0
    # a and b were never read: gone after 20 s, and room for d
    lag.created(KEY, "d", at=21.0)
    lag.read(KEY, ["a", "b", "d"], sent=22.0, answered=22.0, covers_from=0.0)
    assert lag.window.samples == 1


# --- the window at work in the reconciler, on fake time ------------------------------------


class LaggingAdf:
    """Lists a run ``lag_s`` after it was created (``lag_s`` may change while the test runs)."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.lag_s = 2.0
        self.runs: list[tuple[float, dict[str, Any]]] = []

    def create(self, run_spec: RunSpec) -> str:
        run_id = str(uuid.uuid4())
        row = {
            "runId": run_id,
            "pipelineName": run_spec.pipeline,
            "parameters": dict(run_spec.parameters),
            "invokedBy": {"invokedByType": "Manual"},
            "runStart": datetime.now(UTC).isoformat(),
        }
        self.runs.append((self.timeline.now + self.lag_s, row))
        return run_id

    async def query_pipeline_runs(self, **_: Any) -> QueryResponse:
        listed = [row for visible, row in self.runs if visible <= self.timeline.now]
        return QueryResponse(listed, None, RateLimits(reads=10_000), None)

    async def get_pipeline_run(self, **_: Any) -> dict[str, Any]:
        raise AssertionError("no reruns here")


def spec(name: str) -> RunSpec:
    return RunSpec(
        id=name,
        subscription="sub",
        resource_group="rg",
        factory="factory-a",
        pipeline="LoadOrders",
        parameters={"part": name},
    )


LEARN_FAST = ReconcileSettings(
    window_s=30.0, visibility=WindowRule(min_samples=5, factor=1.25, resolution_s=2.0)
)


def reconciler(adf: LaggingAdf) -> Reconciler:
    return Reconciler(
        reader=adf,
        settings=LEARN_FAST,
        retry=RetrySettings(max_attempts=1),
        clock=adf.timeline.monotonic,
        sleep=adf.timeline.sleep,
    )


async def make_runs(adf: LaggingAdf, finder: Reconciler, *, every_s: float, count: int) -> None:
    """The rest of the batch: runs created (their answers came back) while others wait."""
    for n in range(count):
        run_spec = spec(f"made-{adf.timeline.now}-{n}")
        finder.created(run_spec, adf.create(run_spec))
        await adf.timeline.sleep(every_s)


async def test_a_run_never_created_is_given_up_after_the_learned_window() -> None:
    timeline = Timeline()
    adf = LaggingAdf(timeline)
    finder = reconciler(adf)

    async def batch() -> tuple[str | None, float]:
        making = asyncio.ensure_future(make_runs(adf, finder, every_s=0.25, count=40))
        since = datetime.now(UTC)
        found = await finder.find(spec("lost"), created_since=since, deadline=30.0)
        ended = timeline.now
        await making
        return found, ended

    found, ended = await timeline.run(batch())
    assert found is None
    window = finder.window
    assert window.learned
    # lags of 2 s, read on polls a second or two apart: at most ~3 s each, times 1.25
    assert 2.0 <= window.seconds <= 4.0
    # given up one poll after the learned window, not after the 30 s ceiling
    assert ended <= window.seconds + LEARN_FAST.first_poll_s + 0.01


async def test_when_adf_slows_down_past_the_window_a_late_run_is_still_found() -> None:
    timeline = Timeline()
    adf = LaggingAdf(timeline)
    finder = reconciler(adf)
    lost = spec("lost")

    async def batch() -> tuple[str | None, str]:
        making = asyncio.ensure_future(make_runs(adf, finder, every_s=0.25, count=200))
        # the window is learned while another lost answer waits in vain
        await finder.find(spec("never"), created_since=datetime.now(UTC), deadline=30.0)
        assert finder.window.learned
        learned = finder.window.seconds
        adf.lag_s = 15.0  # ADF slows down; runs made from now on are listed 15 s late
        await timeline.sleep(2.0)
        ambiguous = timeline.now
        lost_id = adf.create(lost)  # created, but the answer was lost
        found = await finder.find(lost, created_since=datetime.now(UTC), deadline=ambiguous + 30.0)
        # it was looked for past the learned window, and found once listed
        assert timeline.now - ambiguous > learned
        await making
        return found, lost_id

    found, lost_id = await timeline.run(batch())
    assert found == lost_id
    assert not finder.window.learned or finder.window.seconds >= 15.0
