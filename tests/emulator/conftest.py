"""Fixtures: the emulator in-process on 127.0.0.1 with a ManualClock, and a raw client for it.

``adf_for(config_yaml=None, **settings)`` serves the emulator with the topology of a config
document (``accept_any`` without one) and returns ``(Adf, InProcessEmulator)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers.emulator_http import Adf, AdfFor, topology

if TYPE_CHECKING:
    import aiohttp

    from tests.helpers.emulator import InProcessEmulator, ServeEmulator


@pytest.fixture
def adf_for(serve_emulator: ServeEmulator, session: aiohttp.ClientSession) -> AdfFor:
    async def start(
        config_yaml: str | None = None, **settings: Any
    ) -> tuple[Adf, InProcessEmulator]:
        served = await serve_emulator(
            None if config_yaml is None else topology(config_yaml), **settings
        )
        return Adf(session, served.url), served

    return start
