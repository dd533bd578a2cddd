"""Runs with an order (``needs`` in the manifest): a dependent is triggered only once every run
it needs has ended ``Succeeded``.

The :class:`DependencyDriver` hands the runs without needs to the scheduler at once, so
independent chains proceed in parallel, and keeps the scheduler open for the rest. Every run
that another run needs is followed by the :class:`~batchrun.run.monitor.Monitor` (the monitor of
``--wait``, writing the same outcome lines) from the moment its trigger line is written. When a
needed run ends:

- ``Succeeded``: each dependent whose needs have now all succeeded goes to the scheduler (its
  pacing, slots and stops are those of every other run);
- otherwise (``Failed``, ``Cancelled``, ``TimedOut``), or when it failed to trigger or was
  skipped: each dependent gets a ``skipped`` line saying why, and so on down the chain; none of
  them is sent.

A line of a dependent that is not triggered::

    {"id": "build.2026-11-03", "status": "skipped", "attempts": 0,
     "reason": "needs load.2026-11-03, which ended Failed",
     "skipped_because": {"needs": "load.2026-11-03", "root": "load.2026-11-03",
                         "root_outcome": "Failed"}, ...}

Further down, ``reason`` says ``needs build.2026-11-03, which was skipped (needs
load.2026-11-03, which ended Failed)``: the direct dependency, then what went wrong at the root.

A stop (a signal, a line that cannot be written, a refused token) stops both the triggering and
the following: nothing more is decided, and the dependents still waiting get no line, so
``--resume`` decides them (:func:`batchrun.run.runner.resumption` hands back the earlier lines of
the needed runs: an outcome there decides, a run triggered without one is followed again).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from batchrun.errors import ApiError
from batchrun.log import get_logger
from batchrun.report.writer import ReportWriter, RunResult
from batchrun.run.outcome import OUTCOMES, SUCCEEDED, Followed, to_follow
from batchrun.times import Now, utc_now

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from batchrun.model import RunSpec
    from batchrun.run.monitor import FollowResult, Monitor
    from batchrun.run.progress import Progress
    from batchrun.run.scheduler import Scheduler

__all__ = ["FAILED_TO_TRIGGER", "NOT_IN_BATCH", "SKIPPED", "DependencyDriver", "ended_as"]

_log = get_logger("batchrun.run.dependencies")

FAILED_TO_TRIGGER: Final = "failed to trigger"
SKIPPED: Final = "skipped"
NOT_IN_BATCH: Final = "not in this batch"


def ended_as(record: Mapping[str, Any]) -> str | None:
    """How a run ended, as far as its dependents are concerned, from its last report line;
    ``None`` while it has not ended (triggered, no outcome line yet: follow it).

    A run ``--only-missing`` found succeeded in ADF counts as ``Succeeded``; a run timed out
    while still running (``--on-timeout report``) has not ended.
    """
    if record.get("already_succeeded") is True:
        return SUCCEEDED
    status = record.get("status")
    if status == "failed":
        return FAILED_TO_TRIGGER
    if status != "succeeded":
        return SKIPPED
    if to_follow({str(record.get("id")): record}):
        return None
    outcome = record.get("outcome")
    return outcome if isinstance(outcome, str) else None


@dataclass(frozen=True, slots=True)
class _Root:
    """The run at the start of a chain of skips, how it ended, and what its dependents say."""

    id: str
    outcome: str
    said: str
    """``needs ROOT, which ended Failed``: the reason of the root's direct dependents."""


@dataclass(slots=True)
class _Waiting:
    spec: RunSpec
    needs: set[str]
    """The runs it needs that have not succeeded yet."""


class DependencyDriver:
    """Triggers a batch whose runs have ``needs``: each dependent once its needs succeeded.

    It runs the :class:`~batchrun.run.scheduler.Scheduler` with an open feed and the
    :class:`~batchrun.run.monitor.Monitor` side by side; :meth:`run` and :meth:`stop` are the
    scheduler's, so the :class:`~batchrun.run.stopper.Stopper` drives either the same way.
    """

    def __init__(
        self,
        *,
        scheduler: Scheduler,
        monitor: Monitor,
        writer: ReportWriter,
        progress: Progress,
        needs: Mapping[str, tuple[str, ...]],
        earlier: Mapping[str, Mapping[str, Any]],
        follow_all: bool = False,
        now: Now = utc_now,
    ) -> None:
        """``earlier``: the last lines of runs an earlier invocation of this report triggered
        (``--resume``), at least of those another run needs; ``follow_all`` (``--wait``): follow
        every triggered run, not only the needed ones."""
        self._scheduler = scheduler
        self._monitor = monitor
        self._writer = writer
        self._progress = progress
        self._needs = needs
        self._earlier = earlier
        self._follow_all = follow_all
        self._now = now
        self._waiting: dict[str, _Waiting] = {}
        self._dependents: dict[str, list[str]] = {}
        self._ready: list[RunSpec] | None = []
        self._stopped = False
        self.follow_error: ApiError | None = None
        """A refused token while following (401/403): the batch stopped for it."""
        self.followed: FollowResult | None = None
        self.undecided = 0
        """Dependents left without a line: the batch stopped, or their needs were never seen
        to end (``--resume`` decides them)."""
        scheduler.on_finish = self._triggered
        monitor.on_end = self._ended

    def stop(self) -> None:
        """Nothing more is triggered or decided; the following stops after its reads."""
        self._stopped = True
        self._scheduler.stop()
        self._monitor.stop()

    async def run(self, todo: Iterable[RunSpec]) -> None:
        """Trigger ``todo`` in order of their needs; raises what the scheduler raises."""
        for spec in todo:
            wanted = self._needs.get(spec.id, ())
            if not wanted:
                self._release(spec)
                continue
            self._waiting[spec.id] = _Waiting(spec, set(wanted))
            for need in wanted:
                self._dependents.setdefault(need, []).append(spec.id)
        self._resume_earlier()
        ready, self._ready = self._ready or [], None
        following = asyncio.ensure_future(self._follow())
        try:
            await self._scheduler.run(ready, open_feed=bool(self._waiting))
        except BaseException:
            # cancelled (a second signal, the grace is over) or raised: the following ends too
            self._monitor.stop()
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
            raise
        # nothing more is triggered, so nothing more is added to follow
        if self._scheduler.stopping:
            self._monitor.stop()
        else:
            self._monitor.close()
        await following
        self.undecided = len(self._waiting)
        if self.undecided:
            _log.warning("dependents.undecided", runs=self.undecided)

    def _resume_earlier(self) -> None:
        """What the earlier lines say: the needed runs that ended decide their dependents; the
        runs triggered without an outcome line yet are followed."""
        in_batch = {spec.id for spec in self._ready or ()} | set(self._waiting)
        for run_id, record in self._earlier.items():
            if run_id in in_batch:
                continue  # triggered again in this batch: its new line decides
            outcome = ended_as(record)
            if outcome is None and (self._follow_all or run_id in self._dependents):
                for followed in to_follow({run_id: record}):
                    self._monitor.add(followed)
            elif outcome is not None and run_id in self._dependents:
                self._decide(run_id, outcome, detail=_text(record.get("reason")))
        known = in_batch | self._earlier.keys()
        for need in [n for n in self._dependents if n not in known]:
            # needed, yet neither in this batch nor in the report (another --shard)
            self._decide(need, NOT_IN_BATCH)

    async def _follow(self) -> None:
        try:
            self.followed = await self._monitor.follow([], open_feed=True)
        except ApiError as exc:
            if exc.status not in (401, 403):
                raise
            _log.error("follow.refused", status=exc.status, code=exc.code)
            self.follow_error = exc
            self.stop()
            return
        except BaseException:
            self.stop()
            raise
        if self._waiting and not (self._stopped or self._scheduler.stopping):
            # the following ended before the needs did (it gave up): no more can be decided
            _log.warning("follow.ended_early", waiting=len(self._waiting))
        self._scheduler.close()

    # --- decisions -------------------------------------------------------------------------------

    def _triggered(self, result: RunResult) -> None:
        """The scheduler wrote ``result``'s line."""
        run_id = result.spec.id
        needed = run_id in self._dependents
        if result.status == "succeeded" and (needed or self._follow_all):
            for followed in to_follow({run_id: result.to_record()}):
                self._monitor.add(followed)
            return
        if needed:
            record = result.to_record()
            outcome = ended_as(record)
            if outcome is not None:
                self._decide(run_id, outcome, detail=result.reason)

    def _ended(self, followed: Followed, outcome: str) -> None:
        """The monitor wrote ``followed``'s outcome line."""
        if followed.id in self._dependents:
            self._decide(followed.id, outcome)

    def _decide(self, run_id: str, outcome: str, *, detail: str | None = None) -> None:
        if self._stopped or self._scheduler.stopping:
            return  # the dependents get no line: --resume decides them
        if outcome == SUCCEEDED:
            self._succeeded(run_id)
        else:
            root = _Root(run_id, outcome, f"needs {run_id}, which {_ended(outcome, detail)}")
            self._skip_dependents(run_id, root)
        if not self._waiting:
            self._scheduler.close()

    def _succeeded(self, run_id: str) -> None:
        for dependent in self._dependents.pop(run_id, ()):
            waiting = self._waiting.get(dependent)
            if waiting is None:
                continue  # already skipped for another of its needs
            waiting.needs.discard(run_id)
            if not waiting.needs:
                del self._waiting[dependent]
                self._release(waiting.spec)

    def _skip_dependents(self, run_id: str, root: _Root) -> None:
        """Every dependent of ``run_id``, and theirs in turn, is skipped (once each)."""
        stack = [run_id]
        while stack:
            need = stack.pop()
            for dependent in self._dependents.pop(need, ()):
                waiting = self._waiting.pop(dependent, None)
                if waiting is None:
                    continue
                reason = root.said if need == root.id else f"needs {need}, which was skipped"
                if need != root.id:
                    reason += f" ({root.said})"
                self._write_skipped(waiting.spec, need, root, reason)
                stack.append(dependent)

    def _write_skipped(self, spec: RunSpec, need: str, root: _Root, reason: str) -> None:
        now = self._now()
        because = {"needs": need, "root": root.id, "root_outcome": root.outcome}
        self._writer.write(
            RunResult(
                spec=spec,
                status="skipped",
                started_at=now,
                finished_at=now,
                attempts=0,
                reason=reason,
                extra={"skipped_because": because},
            )
        )
        self._progress.count_finished("skipped")
        self._progress.blocked += 1
        _log.info("run.skipped", id=spec.id, needs=need, root=root.id, root_outcome=root.outcome)

    def _release(self, spec: RunSpec) -> None:
        if self._ready is not None:
            self._ready.append(spec)  # before the scheduler starts
        elif not self._scheduler.add(spec):
            _log.debug("run.not_taken", id=spec.id)


def _ended(outcome: str, detail: str | None) -> str:
    """``ended Failed``, ``failed to trigger``, ``was skipped (why)``: what a run did."""
    if outcome in OUTCOMES:
        return f"ended {outcome}"
    if outcome == SKIPPED:
        return f"was skipped ({detail})" if detail else "was skipped"
    if outcome == NOT_IN_BATCH:
        return "is not in this batch"
    return outcome


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
