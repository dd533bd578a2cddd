"""A token provider for clients that talk to a fake ARM or the emulator (any token will do)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class StaticTokens:
    """A :class:`batchrun.arm.auth.TokenProvider` that always answers the same bearer token."""

    token: str = field(default="test-token", repr=False)

    async def get_token(self) -> str:
        return self.token
