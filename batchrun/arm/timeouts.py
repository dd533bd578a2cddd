"""How long a request may wait: the settings the CLI and the session share.

Its own module, free of aiohttp, so that declaring the command line's options costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Timeouts"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """``connect_s`` bounds each TCP+TLS connect; ``read_s`` bounds each wait for response bytes.

    Waiting for a free pooled connection is queueing, not failure, so it has no limit.
    """

    connect_s: float = 10.0
    """Seconds for one TCP connect and TLS handshake (``--connect-timeout``, default 10). Nothing
    is sent before the connection is up, so a connect that times out is retried at no risk; ten
    seconds is far beyond a healthy handshake."""
    read_s: float = 60.0
    """Seconds of silence while waiting for response bytes (``--read-timeout``, default 60), not
    a bound on the whole answer. A read that times out is a lost answer: the run may exist, so it
    is reconciled before it is sent again. A minute leaves a slow answer time to come, and still
    notices a hung connection."""
