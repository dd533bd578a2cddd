"""The scheduler's, reconciliation's and the recovery guard's fixed numbers, each with its reason.

The numbers a user may change are settings (:class:`~batchrun.run.scheduler.SchedulerSettings`,
:class:`~batchrun.run.reconcile.ReconcileSettings`); the pacer's are in
:mod:`batchrun.arm.pacing`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

# runs waiting out a backoff or a reconciliation hold a task but no request slot, so a
# subscription may have more runs under way than requests in flight: this many per slot keeps
# the slots busy, and still bounds the tasks (and their memory) however long the manifest
TASKS_PER_SLOT: Final = 4

# up to this many runs, the report's writer tallies its summary as it writes (~110 bytes a run
# held through the batch) and the batch ends without reading the report back; past it the
# report is read back once the batch is freed, so its summary does not add to the batch's peak
# (100,000 runs: +11 MB) where a few tenths of a second at its end are nothing
TALLIED_RUNS: Final = 20_000

# ADF stamps runStart with its own clock: a run our attempt created may seem to start a little
# before our intent. Wider would let an older manual run with the same parameters pass for ours
# (the clock-skew margin of reads that must find every rerun is wider: arm.reads.CLOCK_SKEW)
RECONCILE_CLOCK_SKEW: Final = timedelta(minutes=5)

# pages of one pipeline's runs since the first attempt: far more than a reconcile window holds,
# and a service that kept paging cannot hold a run forever
RECONCILE_MAX_PAGES: Final = 200

# the deadline ends the looking; this bound only matters should the clock never move
RECONCILE_MAX_LOOKS: Final = 1000

# pages of one recovery group's runs: a group holds the run and its few reruns
GUARD_MAX_PAGES: Final = 100

# ADF's queue of a pipeline is full (run.queues): the first wait before a probe, doubling while
# probes are refused. A queued run takes seconds to minutes to start, so a second is the least
# worth waiting; half a minute bounds how late a freed place is noticed
QUEUE_BACKOFF_MIN_S: Final = 1.0
QUEUE_BACKOFF_MAX_S: Final = 30.0

# refused connections (or failed TLS handshakes) in a row, with no answer ever from the
# endpoint, before the batch stops as unreachable: a first wave of requests fails within
# milliseconds, so three say "wrong port/host" without waiting, and one blip is not enough
UNREACHABLE_AFTER: Final = 3

# --only-missing (run.missing): factories searched at once. The reads pacer sets the pace per
# subscription; this bounds the answers held in memory and the sockets open while searching
MISSING_FACTORIES_AT_ONCE: Final = 8
# pipeline names in one PipelineName In filter: a manifest with more pipelines in a factory asks
# once per this many. ADF documents no bound, but a request body of thousands of names risks one
MISSING_PIPELINES: Final = 100
# pages of one factory's succeeded runs since --since: 100,000 runs; more says --since reaches
# too far back for a search, rather than keeping the batch reading before it sends anything
MISSING_MAX_PAGES: Final = 1000
