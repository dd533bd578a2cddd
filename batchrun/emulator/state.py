"""Everything one emulator instance holds; ``reset()`` puts it back to how it started."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from batchrun.emulator.arm import FrontDoor
from batchrun.emulator.faults import FaultInjector
from batchrun.emulator.limits import ArmLimits
from batchrun.emulator.queue import Queues
from batchrun.emulator.spelling import Spellings
from batchrun.emulator.stats import Stats
from batchrun.emulator.store import RunStore, Timing
from batchrun.emulator.tenancy import TenantCheck
from batchrun.emulator.wire import TICKS_PER_SECOND, to_ticks

if TYPE_CHECKING:
    from collections.abc import Sequence

    from batchrun.emulator.clock import Clock
    from batchrun.emulator.config import Settings, Topology
    from batchrun.emulator.history import PastRun

_TICKS_PER_MS = TICKS_PER_SECOND // 1000


class EmulatorState:
    store: RunStore
    stats: Stats
    limits: ArmLimits
    door: FrontDoor
    faults: FaultInjector
    queues: Queues
    spellings: Spellings
    tenants: TenantCheck

    def __init__(
        self,
        settings: Settings,
        topology: Topology,
        *,
        clock: Clock,
        history: Sequence[PastRun] = (),
    ) -> None:
        self.settings = settings
        self.topology = topology
        self.clock = clock
        # what /msi/token hands out: the one token accepted, or any opaque string
        self.token = settings.expect_token or secrets.token_urlsafe(32)
        self._history = list(history)
        self.reset()

    def reset(self) -> None:
        s = self.settings
        self.store = RunStore(
            Timing(
                queued=s.run_queued_ms * _TICKS_PER_MS,
                duration=s.run_duration_ms * _TICKS_PER_MS,
                cancel=s.cancel_ms * _TICKS_PER_MS,
                visibility=s.visibility_delay_ms * _TICKS_PER_MS,
            )
        )
        self.stats = Stats()
        self.limits = ArmLimits(s, self.clock)
        self.door = FrontDoor(s, self.limits)
        self.faults = FaultInjector(s)
        self.queues = Queues(
            queued_ticks=s.run_queued_ms * _TICKS_PER_MS,
            duration_ticks=s.run_duration_ms * _TICKS_PER_MS,
        )
        self.spellings = Spellings()
        self.tenants = TenantCheck(s)
        for past in self._history:
            self.store.add_past(
                past.factory.key,
                run_id=past.run_id,
                group_id=past.group_id,
                pipeline_name=past.pipeline_name,
                parameters=past.parameters,
                status=past.status,
                run_start=past.run_start,
                run_end=past.run_end,
                last_updated=past.last_updated,
                message=past.message,
            )

    def now(self) -> int:
        """Wall-clock time in ticks (100 ns)."""
        return to_ticks(self.clock.time())
