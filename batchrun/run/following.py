"""How runs are followed to their end (``--wait``, ``watch``): the settings, apart from the
:mod:`~batchrun.run.monitor` that follows by them, so that a batch without ``--wait`` builds them
without importing the following itself (its reads, cancels and outcomes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from batchrun.arm.retry import RetrySettings

__all__ = ["MAX_FOLLOW_S", "FollowSettings", "OnTimeout"]

OnTimeout = Literal["report", "cancel"]

# without --timeout a night is still followed for at most a week (ADF's own longest activity
# timeout is 7 days): every wait ends
MAX_FOLLOW_S: Final = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class FollowSettings:
    """How runs are followed: the flags of ``--wait`` and ``watch``."""

    poll_s: float = 30.0
    """The longest wait between polls (``--poll``); shorter while runs are young."""
    timeout_s: float | None = None
    """Seconds from a run's trigger after which it is ``TimedOut`` (``--timeout``); None: never."""
    on_timeout: OnTimeout = "report"
    """``report``: stop following it; ``cancel``: cancel it and wait for ``Cancelled``."""
    retry: RetrySettings = field(default_factory=RetrySettings)
    """The retry policy of each read and cancel (429 and 5xx are retried, paced)."""
    concurrency: int = 8
    """Factories read at once."""
    max_follow_s: float = MAX_FOLLOW_S
