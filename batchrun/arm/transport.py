"""The HTTP session batchrun sends with, and the one place aiohttp errors become ours.

:func:`transport_errors` maps every aiohttp/asyncio failure that left no HTTP response to a
:class:`~batchrun.errors.TransportError`. ``sent`` follows what the failure proves:

====================================  =====================  =========  =====
aiohttp raised                        code                   transient  sent
====================================  =====================  =========  =====
ClientConnectorCertificateError       TlsCertificateError    no         no
ClientConnectorError (DNS, refused)   ConnectionError        yes        no
ConnectionTimeoutError                ConnectTimeout         yes        no
ServerTimeoutError / TimeoutError     Timeout                yes        maybe
ServerDisconnectedError               ServerDisconnected     yes        maybe
ClientPayloadError                    ResponseIncomplete     yes        maybe
other ClientConnectionError (reset)   ConnectionLost         yes        maybe
InvalidURL                            InvalidUrl             no         no
any other ClientError                 HttpClientError        no         maybe
====================================  =====================  =========  =====
"""

from __future__ import annotations

import asyncio.sslproto
import ipaddress
import os
import ssl
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from batchrun.arm.cloud import is_loopback
from batchrun.errors import TransportError, UsageError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from batchrun.arm.timeouts import Timeouts

# Checked in this order; either replaces the system trust store, as in OpenSSL and requests.
CA_BUNDLE_VARS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


def client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    """aiohttp's form of ``timeouts``: no bound on the whole answer (see :class:`Timeouts`)."""
    return aiohttp.ClientTimeout(
        total=None, sock_connect=timeouts.connect_s, sock_read=timeouts.read_s
    )


def ssl_context(environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """A verifying TLS context; trusts only the PEM bundle named by ``SSL_CERT_FILE`` or
    ``REQUESTS_CA_BUNDLE`` when one is set, the system store otherwise."""
    env = os.environ if environ is None else environ
    for var in CA_BUNDLE_VARS:
        path = env.get(var, "").strip()
        if not path:
            continue
        try:
            return ssl.create_default_context(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(
                f"{var}={path!r}: cannot load CA certificates ({exc})."
                f"\nHINT: point {var} at a readable PEM bundle, or unset it to use the system store"
            ) from exc
    return ssl.create_default_context()


@dataclass(frozen=True, slots=True)
class Proxy:
    """The proxy for one endpoint, from ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``."""

    url: URL | None = None
    auth: aiohttp.BasicAuth | None = field(default=None, repr=False)


def proxy_for(endpoint: str) -> Proxy:
    """The proxy for ``endpoint``; a UsageError for an ``http://`` endpoint a proxy would carry.

    A loopback endpoint is never proxied, whatever ``NO_PROXY`` says: a proxy elsewhere cannot
    reach this machine's loopback, and over ``http://`` it would read the bearer token. Resolved
    once per process: aiohttp's ``trust_env`` would read the environment (and ``~/.netrc``, in a
    worker thread) again for every request.
    """
    if is_loopback(endpoint):
        return Proxy()
    try:
        url, auth = get_env_proxy_for_url(URL(endpoint))
    except LookupError:
        return Proxy()
    if urlsplit(endpoint).scheme != "https":
        raise UsageError(
            f"endpoint {endpoint!r} uses http:// and HTTP_PROXY would carry it: the proxy would "
            "read the bearer token.\nHINT: use an https:// endpoint, or list its host in NO_PROXY"
        )
    return Proxy(url, auth)


def is_local(url: str) -> bool:
    """Loopback, or link-local (IMDS at 169.254.169.254): addresses no proxy can reach for us."""
    if is_loopback(url):
        return True
    try:
        return ipaddress.ip_address(urlsplit(url).hostname or "").is_link_local
    except ValueError:
        return False


def identity_transport() -> Any:
    """The transport for azure-identity's credentials: azure-core's aiohttp transport with the
    proxy chosen per request, from the environment as usual, except that local addresses are
    never proxied. The managed-identity endpoints are local (``IDENTITY_ENDPOINT`` on loopback,
    IMDS link-local) and plain http: a proxy would read ``X-IDENTITY-HEADER`` and the token, and
    cannot reach them anyway."""
    # the session must not read proxies itself: with trust_env it would proxy local addresses
    return _local_direct_transport()(use_env_settings=False)


@cache
def _local_direct_transport() -> type[Any]:
    # declared on first use: azure-core's import (~0.03 s) is only for a process that signs in
    # itself, not one whose token was fetched ahead (batchrun.arm.tokenahead)
    from azure.core.pipeline.transport import AioHttpTransport

    class LocalDirectTransport(AioHttpTransport):  # type: ignore[misc]  # exported lazily: Any
        async def send(self, request: Any, **config: Any) -> Any:
            url = str(request.url)
            if is_local(url):
                config.pop("proxies", None)
            elif "proxies" not in config:
                try:
                    proxy, auth = get_env_proxy_for_url(URL(url))
                except LookupError:
                    pass
                else:
                    config.setdefault("proxy", proxy)
                    config.setdefault("proxy_auth", auth)
            return await super().send(request, **config)

    return LocalDirectTransport


# asyncio gives every TLS connection a read buffer of 256 KiB, zeroed, so resident at once: 16 MB
# for the 64 connections of a ``--concurrency 64`` batch. ARM's answers are a few KB (a page of
# queryPipelineRuns ~100 KB, read in a few turns); two TLS records' worth is enough.
TLS_READ_BUFFER_BYTES: Final = 32 * 1024


def small_tls_read_buffers() -> None:
    """Give the TLS connections opened from now on :data:`TLS_READ_BUFFER_BYTES` of read buffer.

    ``asyncio.sslproto.SSLProtocol.max_size`` is the size of that buffer, and of the largest
    read: a class attribute, as no API passes it through aiohttp. batchrun owns its process, so
    it sets it once; a Python without the attribute keeps its default.
    """
    protocol = getattr(asyncio.sslproto, "SSLProtocol", None)
    if protocol is not None and getattr(protocol, "max_size", 0) > TLS_READ_BUFFER_BYTES:
        protocol.max_size = TLS_READ_BUFFER_BYTES


def build_session(*, timeouts: Timeouts, limit: int) -> aiohttp.ClientSession:
    """The process's one HTTP session; open it with ``async with``.

    A CA bundle comes from :func:`ssl_context`; TLS verification is always on. Proxies are
    passed per request from :func:`proxy_for`. ``limit`` caps open connections and should
    equal the run concurrency.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    small_tls_read_buffers()
    connector = aiohttp.TCPConnector(limit=limit, ssl=ssl_context())
    return aiohttp.ClientSession(
        connector=connector, timeout=client_timeout(timeouts), trust_env=False
    )


@contextmanager
def transport_errors(host: str, timeouts: Timeouts) -> Iterator[None]:
    """Re-raise aiohttp/asyncio failures inside the block as :class:`TransportError`."""
    try:
        yield
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _translate(exc, host, timeouts) from exc


def _translate(exc: BaseException, host: str, timeouts: Timeouts) -> TransportError:
    maybe = "; the service may have acted on the request"
    # Order matters: the aiohttp classes nest (a ConnectionTimeoutError is a ServerTimeoutError).
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return _error(
            "TlsCertificateError",
            f"the TLS certificate of {host} is not trusted: {exc.certificate_error}"
            f"\nHINT: behind a TLS-inspecting proxy, set SSL_CERT_FILE to a PEM bundle with its CA",
            transient=False,
            sent=False,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _error("ConnectionError", str(exc), transient=True, sent=False)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return _error(
            "ConnectTimeout",
            f"no connection to {host} within {timeouts.connect_s:g}s",
            transient=True,
            sent=False,
        )
    if isinstance(exc, TimeoutError):  # includes aiohttp's read timeouts
        return _error(
            "Timeout",
            f"no response from {host} within {timeouts.read_s:g}s{maybe}",
            transient=True,
            sent=True,
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return _error(
            "ServerDisconnected", f"{host} closed the connection{maybe}", transient=True, sent=True
        )
    if isinstance(exc, aiohttp.ClientPayloadError):
        return _error(
            "ResponseIncomplete",
            f"the response from {host} was cut off ({exc}){maybe}",
            transient=True,
            sent=True,
        )
    if isinstance(exc, aiohttp.ClientConnectionError):
        return _error(
            "ConnectionLost",
            f"connection to {host} failed: {exc or type(exc).__name__}{maybe}",
            transient=True,
            sent=True,
        )
    if isinstance(exc, aiohttp.InvalidURL):
        return _error("InvalidUrl", f"invalid URL: {exc}", transient=False, sent=False)
    return _error(
        "HttpClientError", f"{type(exc).__name__}: {exc}{maybe}", transient=False, sent=True
    )


def _error(code: str, message: str, *, transient: bool, sent: bool) -> TransportError:
    return TransportError(status=None, code=code, message=message, transient=transient, sent=sent)
