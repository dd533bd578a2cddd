"""The parent's end of the token fetched ahead (batchrun/arm/tokenahead.py), against a stand-in
child: the test holds the child's ends of the two pipes, and a ``sleep`` process stands for the
child's pid, to be killed and reaped. The real fork is tested end to end
(tests/cli/test_token_ahead_e2e.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ServiceRequestError

from batchrun.arm.auth import CredentialTokens
from batchrun.arm.tokenahead import TokenAhead, _AheadToken, wants_token_ahead
from batchrun.errors import AuthError
from tests.helpers.clock import FakeTime

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="a Linux-only path")

SCOPE = "https://management.azure.com/.default"
FAILURE = (
    "no token for scope https://management.azure.com/.default: tried managed identity; "
    "none gave one. Fix: IDENTITY_ENDPOINT=http://127.0.0.1:1/msi/token gave no token"
)


class SignIn:
    """The in-process sign-in: counts the credentials built and the tokens they gave."""

    def __init__(self, clock: FakeTime) -> None:
        self.clock = clock
        self.built = 0
        self.calls = 0
        self.closed = False
        self.down = False

    def __call__(self) -> SignIn:
        self.built += 1
        return self

    async def get_token(self, *scopes: str) -> AccessToken:
        self.calls += 1
        if self.down:
            raise ServiceRequestError("Server disconnected")
        return AccessToken(f"in-process-{self.calls}", int(self.clock.time() + 3600))

    async def close(self) -> None:
        self.closed = True


@dataclass
class Child:
    """The stand-in child: its process and its ends of the pipes."""

    process: subprocess.Popen[bytes]
    go: int | None  # what the parent says
    answer: int | None  # where the child answers

    def says(self, answer: object) -> None:
        self.says_bytes(json.dumps(answer).encode())

    def says_bytes(self, data: bytes) -> None:
        assert self.answer is not None
        os.write(self.answer, data)
        self.hangs_up()

    def hangs_up(self) -> None:
        if self.answer is not None:
            os.close(self.answer)
            self.answer = None

    def goes_away(self) -> None:
        self.hangs_up()
        if self.go is not None:
            os.close(self.go)
            self.go = None

    def was_told(self) -> bytes:
        assert self.go is not None
        return os.read(self.go, 256)

    def reaped(self) -> bool:
        try:
            os.waitpid(self.process.pid, os.WNOHANG)
        except ChildProcessError:
            return True
        return False


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def sign_in(clock: FakeTime) -> SignIn:
    return SignIn(clock)


@pytest.fixture
def pipes() -> tuple[tuple[int, int], tuple[int, int]]:
    """(go read, go write), (answer read, answer write): the child's ends are the Child's to
    close, the parent's the TokenAhead's."""
    return os.pipe(), os.pipe()


@pytest.fixture
def child(pipes: tuple[tuple[int, int], tuple[int, int]]) -> Iterator[Child]:
    process = subprocess.Popen(["sleep", "600"])
    (go, _), (_, answer) = pipes
    stand_in = Child(process, go, answer)
    yield stand_in
    stand_in.goes_away()
    process.kill()  # a no-op once reaped
    process.wait()


def ahead_for(
    child: Child,
    pipes: tuple[tuple[int, int], tuple[int, int]],
    sign_in: SignIn,
    *,
    timeout_s: float = 60,
) -> TokenAhead:
    clock = sign_in.clock
    (_, go), (answer, _) = pipes
    return TokenAhead(
        scope=SCOPE,
        cloud="AzurePublicCloud",
        child=child.process.pid,
        go=go,
        answer=answer,
        sign_in=sign_in,
        timeout_s=timeout_s,
        clock=clock.time,
    )


@pytest.fixture
def ahead(
    child: Child, pipes: tuple[tuple[int, int], tuple[int, int]], sign_in: SignIn
) -> Iterator[TokenAhead]:
    made = ahead_for(child, pipes, sign_in)
    yield made
    made.end_child()


async def test_the_first_token_is_the_childs_and_nothing_signs_in(
    ahead: TokenAhead, child: Child, sign_in: SignIn, clock: FakeTime
) -> None:
    child.says({"token": "ahead-token", "expires_on": int(clock.time()) + 3600})
    tokens = CredentialTokens(ahead, SCOPE, clock=clock.time)
    assert await tokens.get_token() == "ahead-token"
    assert await tokens.get_token() == "ahead-token"
    assert child.was_told() == b"gAzurePublicCloud\n"
    assert sign_in.built == 0
    assert child.reaped()
    await tokens.close()
    assert not sign_in.closed  # none was built


async def test_a_token_near_expiry_is_refreshed_in_process(
    ahead: TokenAhead, child: Child, sign_in: SignIn, clock: FakeTime
) -> None:
    child.says({"token": "ahead-token", "expires_on": int(clock.time()) + 3600})
    tokens = CredentialTokens(ahead, SCOPE, refresh_margin_s=300, clock=clock.time)
    assert await tokens.get_token() == "ahead-token"
    clock.advance(3299)  # 301 s left: still outside the margin
    assert await tokens.get_token() == "ahead-token"
    clock.advance(1)
    assert await tokens.get_token() == "in-process-1"
    assert await tokens.get_token() == "in-process-1"
    assert (sign_in.built, sign_in.calls) == (1, 1)
    await tokens.close()
    assert sign_in.closed


async def test_a_short_lived_token_is_not_refreshed_sooner_than_azure_identity_would(
    ahead: TokenAhead, child: Child, sign_in: SignIn, clock: FakeTime
) -> None:
    child.says({"token": "ahead-token", "expires_on": int(clock.time()) + 120})
    tokens = CredentialTokens(ahead, SCOPE, refresh_margin_s=300, clock=clock.time)
    assert await tokens.get_token() == "ahead-token"
    clock.advance(29)  # within the margin already, but asked for only 29 s ago
    assert await tokens.get_token() == "ahead-token"
    assert sign_in.built == 0
    clock.advance(1)
    assert await tokens.get_token() == "in-process-1"


async def test_a_failed_refresh_uses_the_childs_token_until_it_expires(
    ahead: TokenAhead, child: Child, sign_in: SignIn, clock: FakeTime
) -> None:
    child.says({"token": "ahead-token", "expires_on": int(clock.time()) + 100})
    tokens = CredentialTokens(ahead, SCOPE, refresh_margin_s=300, clock=clock.time)
    assert await tokens.get_token() == "ahead-token"
    sign_in.down = True
    clock.advance(30)
    assert await tokens.get_token() == "ahead-token"
    assert sign_in.calls == 1
    clock.advance(29)  # the next attempt comes 30 s after the failed one
    assert await tokens.get_token() == "ahead-token"
    assert sign_in.calls == 1
    clock.advance(41)  # expired
    with pytest.raises(AuthError, match="Server disconnected"):
        await tokens.get_token()
    assert sign_in.calls == 2


async def test_the_childs_failure_is_raised_in_its_own_words_and_not_asked_again(
    ahead: TokenAhead, child: Child, sign_in: SignIn
) -> None:
    child.says({"error": FAILURE})
    tokens = CredentialTokens(ahead, SCOPE)
    with pytest.raises(AuthError) as raised:
        await tokens.get_token()
    assert str(raised.value) == FAILURE
    assert sign_in.built == 0
    assert child.reaped()


@pytest.mark.parametrize(
    "answer",
    [
        b"",  # it crashed before answering
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"token": "", "expires_on": 1}',
        b'{"token": "t", "expires_on": "soon"}',
        b'{"token": "t", "expires_on": true}',
        b'{"error": ""}',
        b'{"token": "t"',  # cut off
    ],
    ids=["nothing", "text", "bytes", "list", "empty", "when", "bool", "no-error", "cut"],
)
async def test_anything_else_from_the_child_means_signing_in_in_process(
    ahead: TokenAhead, child: Child, sign_in: SignIn, answer: bytes
) -> None:
    child.says_bytes(answer)
    tokens = CredentialTokens(ahead, SCOPE)
    assert await tokens.get_token() == "in-process-1"
    assert sign_in.built == 1
    assert child.reaped()


async def test_a_child_gone_before_its_go_means_signing_in_in_process(
    ahead: TokenAhead, child: Child, sign_in: SignIn
) -> None:
    child.goes_away()  # no reader: the go fails with EPIPE
    assert await CredentialTokens(ahead, SCOPE).get_token() == "in-process-1"
    assert child.reaped()


async def test_a_child_that_does_not_answer_in_time_is_killed_and_replaced(
    child: Child, pipes: tuple[tuple[int, int], tuple[int, int]], sign_in: SignIn
) -> None:
    ahead = ahead_for(child, pipes, sign_in, timeout_s=0.05)  # and the child never answers
    assert await CredentialTokens(ahead, SCOPE).get_token() == "in-process-1"
    assert child.was_told() == b"gAzurePublicCloud\n"
    assert child.reaped()


async def test_closing_unasked_tells_nothing_and_kills_and_reaps_the_child(
    ahead: TokenAhead, child: Child, sign_in: SignIn
) -> None:
    await CredentialTokens(ahead, SCOPE).close()
    assert child.was_told() == b""  # the pipe closed: no go
    assert child.reaped()
    assert sign_in.built == 0
    ahead.end_child()  # again, as the exit handler would: nothing left to do


async def test_another_scope_is_signed_in_for_and_leaves_the_child_unasked(
    ahead: TokenAhead, child: Child, sign_in: SignIn
) -> None:
    token = await ahead.get_token("https://management.usgovcloudapi.net/.default")
    assert token.token == "in-process-1"
    child.says({"token": "ahead-token", "expires_on": 2**40})
    assert (await ahead.get_token(SCOPE)).token == "ahead-token"
    assert child.was_told() == b"gAzurePublicCloud\n"
    await ahead.close()


def test_the_token_is_in_no_repr() -> None:
    token = _AheadToken("secret-token-value", 123)
    assert "secret-token-value" not in repr(token)
    assert token.token == "secret-token-value"


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["run", "m.yaml"], True),
        (["run", "m.yaml", "--report", "r.jsonl", "--wait"], True),
        (["run", "m.yaml", "--dry-run"], False),
        (["run", "--help"], False),
        (["run", "-h"], False),
        (["recover", "r.jsonl"], False),
        (["validate", "m.yaml"], False),
        (["--version"], False),
        ([], False),
    ],
)
def test_only_a_run_that_will_ask_for_a_token_forks_a_child(argv: list[str], wanted: bool) -> None:
    assert wants_token_ahead(argv) is wanted
