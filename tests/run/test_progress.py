"""The batch's counters: elapsed time and rate are the triggering's, not the following's."""

from __future__ import annotations

from batchrun.run.progress import Progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_elapsed_time_stops_when_the_last_run_is_triggered() -> None:
    clock = FakeClock()
    progress = Progress(total=2, clock=clock)
    clock.now += 4.0
    progress.count_finished("succeeded")
    assert progress.elapsed() == 4.0
    assert progress.rate() == 0.25
    clock.now += 6.0
    progress.count_finished("failed")
    assert progress.elapsed() == 10.0
    # following the runs to their end (--wait) for another hour is not triggering time
    clock.now += 3600.0
    assert progress.elapsed() == 10.0
    assert progress.rate() == 0.2
    assert progress.eta_s() == 0.0
    assert "2 of 2 runs in 10.0s: 1 succeeded, 1 failed" in progress.summary()


def test_a_batch_still_triggering_counts_up_to_now() -> None:
    clock = FakeClock()
    progress = Progress(total=3, clock=clock)
    progress.count_finished("skipped")
    clock.now += 30.0
    assert progress.elapsed() == 30.0
    assert progress.eta_s() == 60.0
