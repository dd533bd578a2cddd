"""The first token of ``batchrun run``, fetched ahead by a forked child.

Signing in costs a start-up ~0.1 s of imports (azure-identity's package pulls in cryptography,
msal, requests and azure-core's pipeline; it cannot be imported in part) before the first token
is even asked for. A child forked at the process's start, when the command line says ``run``
(:mod:`batchrun.__main__`), does those imports on the second core while the parent does its own
and loads the manifest.

Nothing is sent before the parent says so: the child waits on a pipe, and the parent writes "go"
and the cloud's name where it asks for its first token (:func:`batchrun.arm.session.open_client`,
after the manifest, the report and the lock were found good). A pipe that closes first (a usage
or manifest error, ``--dry-run``, a signal, ``kill -9``) ends the child having sent nothing. The
child's answer comes back on a second pipe, as JSON: the token and its expiry, or the
:class:`AuthError` text that :class:`~batchrun.arm.auth.CredentialTokens` wrote for the failure,
so the parent says exactly what it would have said itself without asking the identity endpoint
again. Anything else (a crash, garbage, no answer in time) and the parent signs in itself, as it
does for every later token (one within the refresh margin).

Only on Linux, with a second CPU to run on (on one, the child's imports would only slow the
parent's), and only in a process without threads (fork copies one thread only); elsewhere no
child is forked and the parent signs in itself from the start.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import signal
import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

from batchrun.errors import AuthError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from batchrun.arm.auth import CredentialTokens, Token, TokenSource
    from batchrun.arm.cloud import Cloud

__all__ = ["TokenAhead", "claim_token_ahead", "fork_token_ahead", "wants_token_ahead"]

_GO = b"g"
# a run with one of these asks for no token (``--dry-run``), or exits before the command
_NO_TOKEN = frozenset({"--dry-run", "-h", "--help"})
# the in-process sign-in has no bound of its own either; this one only keeps a child that hangs
# (an IMDS that never answers) from holding the batch for longer than signing in again would
ANSWER_TIMEOUT_S = 120.0
# azure-identity's spacing of the refreshes of a token it cached, still valid but within the
# margin: none sooner than this after the last request, and after a failed one the cached token
# is used until it expires. The child's token is treated so, as if the parent had fetched it.
REFRESH_RETRY_DELAY_S = 30.0


@dataclass(frozen=True, slots=True)
class _AheadToken:
    token: str = field(repr=False)
    expires_on: int


def wants_token_ahead(argv: Sequence[str]) -> bool:
    """Whether a command line (``sys.argv[1:]``) is a ``run`` that will ask for a token."""
    return argv[:1] == ["run"] and not _NO_TOKEN.intersection(argv[1:])


def fork_token_ahead() -> None:
    """Fork the child, at the process's start, where it can be done safely and is worth it; the
    command claims it (:func:`claim_token_ahead`), or it ends when this process does."""
    global _pending  # one child per process, from its start to its claim
    if sys.platform != "linux" or not hasattr(os, "fork") or threading.active_count() > 1:
        return
    if _pending is not None or len(os.sched_getaffinity(0)) < 2:
        return
    # imported once here for both processes, not once in each (~0.07 s of CPU): the parent's
    # client and the child's credential (azure-core's async transport) use it. Measured, more
    # shared imports here (structlog, our auth and transport) only delayed the child.
    import aiohttp  # noqa: F401

    go_read, go_write = os.pipe()
    answer_read, answer_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(go_write)
        os.close(answer_read)
        _child(go=go_read, answer=answer_write)
    os.close(go_read)
    os.close(answer_write)
    _pending = _Pending(child=pid, go=go_write, answer=answer_read)
    atexit.register(_pending.end)


def claim_token_ahead(cloud_name: str, *, wanted: bool = True) -> TokenAhead | None:
    """The child forked at the start, to fetch the first token for the cloud called
    ``cloud_name``; ``None`` where there is none, where it is not ``wanted`` (it then ends
    having sent nothing), or for an unknown cloud (whose error comes later, in its usual turn)."""
    global _pending
    pending, _pending = _pending, None
    if pending is None:
        return None
    atexit.unregister(pending.end)
    from batchrun.arm.cloud import get_cloud

    try:
        cloud = get_cloud(cloud_name) if wanted else None
    except UsageError:
        cloud = None
    if cloud is None:
        pending.end()
        return None
    from batchrun.arm.auth import default_credential

    def sign_in() -> TokenSource:
        return default_credential(authority=cloud.authority)

    return TokenAhead(
        scope=cloud.scope,
        cloud=cloud.name,
        child=pending.child,
        go=pending.go,
        answer=pending.answer,
        sign_in=sign_in,
    )


@dataclass(slots=True)
class _Pending:
    """A child forked and not yet claimed by the command."""

    child: int
    go: int
    answer: int

    def end(self) -> None:
        """Unclaimed, it has sent nothing, and a command that ends early (a usage error) should
        not wait for its imports."""
        _end_child(self.child, self.go, self.answer)


_pending: _Pending | None = None


class TokenAhead:
    """The parent's end: a :class:`~batchrun.arm.auth.TokenSource` whose first token for
    ``scope`` is the child's; every other one comes from ``sign_in()``'s credential, built when
    first needed (refreshing the child's token is spaced as azure-identity spaces its own:
    :data:`REFRESH_RETRY_DELAY_S`). It owns the child: :meth:`close` (or, failing that, the
    process's exit) kills it if it still runs, and reaps it."""

    def __init__(
        self,
        *,
        scope: str,
        cloud: str,
        child: int,
        go: int,
        answer: int,
        sign_in: Callable[[], TokenSource],
        timeout_s: float = ANSWER_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._scope = scope
        self._cloud = cloud
        self._child: int | None = child
        self._go: int | None = go
        self._answer: int | None = answer
        self._sign_in = sign_in
        self._timeout_s = timeout_s
        self._clock = clock
        self._credential: TokenSource | None = None
        # the child's token, until the parent's own credential has one (and caches it itself)
        self._ahead: Token | None = None
        self._retry_at = 0.0
        atexit.register(self.end_child)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scope={self._scope!r}, child={self._child})"

    async def get_token(self, *scopes: str) -> Token:
        go, answer = self._go, self._answer
        if go is not None and answer is not None and scopes == (self._scope,):
            self._go = self._answer = None  # asked once: the pipes are _ask_child's to close
            child = await self._ask_child(go, answer)
            if isinstance(child, AuthError):
                raise child
            if child is not None:
                self._ahead, self._retry_at = child, self._clock() + REFRESH_RETRY_DELAY_S
                return child
        ahead = self._ahead if scopes == (self._scope,) else None
        if ahead is not None and self._clock() < min(self._retry_at, ahead.expires_on):
            return ahead
        if self._credential is None:
            self._credential = self._sign_in()
        if ahead is None:
            return await self._credential.get_token(*scopes)
        from azure.core.exceptions import AzureError  # the credential imported it already

        try:
            token = await self._credential.get_token(*scopes)
        except AzureError:
            if self._clock() >= ahead.expires_on:
                raise
            self._retry_at = self._clock() + REFRESH_RETRY_DELAY_S
            return ahead
        self._ahead = None
        return token

    async def _ask_child(self, go: int, answer: int) -> Token | AuthError | None:
        try:
            try:
                os.write(go, _GO + self._cloud.encode() + b"\n")
            finally:
                os.close(go)
        except OSError:  # the child is gone (EPIPE)
            os.close(answer)
            self.end_child()
            return None
        try:
            data = await asyncio.wait_for(_read_to_end(answer), self._timeout_s)
        except TimeoutError:
            data = b""
        finally:
            self.end_child()
        return _answer_from(data)

    def end_child(self) -> None:
        """Close the pipes, kill the child if it still runs, and reap it; idempotent."""
        if self._child is None:
            return
        pid, self._child = self._child, None
        atexit.unregister(self.end_child)
        _end_child(pid, self._go, self._answer)
        self._go = self._answer = None

    async def close(self) -> None:
        self.end_child()
        if self._credential is not None:
            await self._credential.close()


def _end_child(pid: int, *pipes: int | None) -> None:
    """Close the parent's ends of the pipes still open, kill the child and reap it. An answered
    child is exiting already: the kill only ends one that did not answer (or was never told)."""
    for fd in pipes:
        if fd is not None:
            os.close(fd)
    with suppress(ChildProcessError, ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


async def _read_to_end(fd: int) -> bytes:
    """What the child wrote, once it closed its end (by exiting)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe = os.fdopen(fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        return await reader.read()
    finally:
        transport.close()


def _answer_from(data: bytes) -> Token | AuthError | None:
    """The child's token or failure; ``None`` for anything else (never quoted: it may hold one)."""
    try:
        answer = json.loads(data)
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    token, expires_on, error = answer.get("token"), answer.get("expires_on"), answer.get("error")
    if isinstance(token, str) and token and type(expires_on) is int:
        return _AheadToken(token, expires_on)
    if isinstance(error, str) and error:
        return AuthError(error)
    return None


def _child(*, go: int, answer: int) -> NoReturn:
    """The forked child's whole life; it never returns into the parent's code, and leaves by
    ``os._exit``: no atexit handler of the parent's runs, no buffer of the parent's is flushed."""
    code = 1
    try:
        # the terminal's Ctrl-C ends it too; what it might print would repeat the parent's
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        # what the child is for, done while the parent does its own imports and reads the
        # manifest: azure-identity's imports, and the credential (~0.06 s to build), for the
        # default cloud; another one named with the go is built then
        from batchrun.arm.cloud import DEFAULT_CLOUD, get_cloud

        ready = _tokens_for(get_cloud(DEFAULT_CLOUD))
        cloud = _told(go)
        if cloud is not None:
            tokens = ready if cloud.name == DEFAULT_CLOUD else _tokens_for(cloud)
            asyncio.run(_fetch(tokens, answer=answer))
        code = 0
    finally:
        os._exit(code)


def _tokens_for(cloud: Cloud) -> CredentialTokens:
    from batchrun.arm.auth import CredentialTokens, default_credential

    return CredentialTokens(default_credential(authority=cloud.authority), cloud.scope)


def _told(go: int) -> Cloud | None:
    """The cloud the parent names with its go; None when the pipe closes (it will never ask)."""
    said = b""
    # blocking is right here: the child has nothing else to do, and nothing may be sent before
    while not said.endswith(b"\n"):
        chunk = os.read(go, 256)
        if not chunk:
            return None
        said += chunk
    if not said.startswith(_GO):
        return None
    from batchrun.arm.cloud import get_cloud

    try:
        return get_cloud(said[len(_GO) : -1].decode())
    except (UnicodeDecodeError, UsageError):
        return None


async def _fetch(tokens: CredentialTokens, *, answer: int) -> None:
    message: dict[str, object]
    try:
        token = await tokens.access_token()
    except AuthError as exc:
        message = {"error": str(exc)}
    else:
        message = {"token": token.token, "expires_on": token.expires_on}
    data = json.dumps(message).encode()
    while data:
        data = data[os.write(answer, data) :]
