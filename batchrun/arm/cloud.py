"""Azure clouds: where the management API lives, which token scope it accepts, and where its
identities sign in (the Microsoft Entra authority host).

An endpoint override (``--endpoint`` or ``BATCHRUN_ENDPOINT``, e.g. the local emulator) replaces
the URL only; tokens are still asked for the cloud's scope. Since the token goes wherever the
endpoint points, an override must name the cloud's own management host or a loopback host, unless
the user allows another host explicitly (``--allow-endpoint``, ``BATCHRUN_ALLOW_ENDPOINT``).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from batchrun.errors import UsageError
from batchrun.log import get_logger

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

__all__ = [
    "ALLOW_ENDPOINT_VAR",
    "CLOUDS",
    "Cloud",
    "allowed_hosts",
    "get_cloud",
    "is_loopback",
    "resolve_endpoint",
]

ALLOW_ENDPOINT_VAR = "BATCHRUN_ALLOW_ENDPOINT"
# Lower-case ASCII only (urlsplit lower-cases): a host compared as text must be the host dialled.
_HOST_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.?")
_log = get_logger(__name__)


def is_loopback(url: str) -> bool:
    """True when ``url``'s host is ``localhost``, 127.0.0.0/8 or ``::1``."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Cloud:
    name: str
    endpoint: str
    scope: str
    # azure.identity.AzureAuthorityHosts' value for the cloud (a test checks they agree; not
    # imported here, so that loading batchrun does not load azure.identity)
    authority: str


def _cloud(name: str, host: str, authority: str) -> Cloud:
    return Cloud(
        name=name,
        endpoint=f"https://{host}/",
        scope=f"https://{host}/.default",
        authority=authority,
    )


CLOUDS: Mapping[str, Cloud] = MappingProxyType(
    {
        cloud.name: cloud
        for cloud in (
            _cloud("AzurePublicCloud", "management.azure.com", "login.microsoftonline.com"),
            _cloud("AzureUSGovernment", "management.usgovcloudapi.net", "login.microsoftonline.us"),
            _cloud("AzureChinaCloud", "management.chinacloudapi.cn", "login.chinacloudapi.cn"),
        )
    }
)

# ``--cloud``'s default
DEFAULT_CLOUD = "AzurePublicCloud"

# `az cloud list` spells the public cloud "AzureCloud"; accept what users copy from there.
_ALIASES = {"azurecloud": "AzurePublicCloud"}


def get_cloud(name: str) -> Cloud:
    """The cloud called ``name`` (case-insensitive), or a UsageError that lists the known ones."""
    by_lower = {known.lower(): known for known in CLOUDS}
    wanted = name.strip().lower()
    canonical = by_lower.get(wanted) or _ALIASES.get(wanted)
    if canonical is not None:
        return CLOUDS[canonical]
    message = f"unknown cloud {name!r}; known clouds: {', '.join(CLOUDS)}"
    close = difflib.get_close_matches(wanted, by_lower, n=1, cutoff=0.6)
    if close:
        message += f"\nHINT: did you mean {by_lower[close[0]]!r}?"
    raise UsageError(message)


def allowed_hosts(flags: Iterable[str] | None, environ: Mapping[str, str]) -> frozenset[str]:
    """The hosts named by ``--allow-endpoint HOST`` (repeatable) and ``BATCHRUN_ALLOW_ENDPOINT``
    (comma-separated), lower-cased; a UsageError for anything that is not a bare host name."""
    named = [*(flags or ()), *environ.get(ALLOW_ENDPOINT_VAR, "").split(",")]
    hosts = set()
    for entry in named:
        host = entry.strip().lower().removeprefix("[").removesuffix("]")
        if not host:
            continue
        if not (_HOST_NAME.fullmatch(host) or _is_ip(host)):
            raise UsageError(
                f"--allow-endpoint/{ALLOW_ENDPOINT_VAR}: {entry.strip()!r} is not a host name."
                "\nHINT: name the host alone, e.g. arm.contoso.example (no scheme, port or path;"
                " an internationalised name in its xn-- form)"
            )
        hosts.add(host)
    return frozenset(hosts)


def resolve_endpoint(
    cloud: Cloud, override: str | None, *, allowed: Collection[str] = frozenset()
) -> str:
    """The management endpoint to send to, without a trailing slash; logs the host in use.

    ``override`` replaces ``cloud.endpoint`` when given. It must be an absolute ``https://`` URL,
    or ``http://`` on a loopback host (the emulator); it may carry a path prefix but no query,
    fragment or credentials. Its host must be the cloud's management host (on port 443), a
    loopback host, or one of ``allowed`` (see :func:`allowed_hosts`): the bearer token goes
    wherever the endpoint points.
    """
    if override is None or not override.strip():
        url, why = cloud.endpoint.rstrip("/"), "cloud"
    else:
        url = override.strip()
        why = _check_override(cloud, url, allowed)
        url = url.rstrip("/")
    _log.info("endpoint", host=urlsplit(url).hostname, cloud=cloud.name, allowed_by=why)
    return url


def _check_override(cloud: Cloud, url: str, allowed: Collection[str]) -> str:
    """Why the token may go to ``url`` (``cloud``, ``loopback`` or ``--allow-endpoint``), or a
    UsageError saying why not."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"endpoint {url!r} is not a valid URL: {exc}") from exc
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise UsageError(
            f"endpoint {url!r} must be an absolute http(s) URL, e.g. https://management.azure.com"
        )
    if parts.username is not None or parts.password is not None:
        raise UsageError(f"endpoint for host {host!r} must not carry user:password@")
    if parts.query or parts.fragment:
        raise UsageError(f"endpoint {url!r} must not have a query string or fragment")
    if not (_HOST_NAME.fullmatch(host) or _is_ip(host)):
        # what is compared must be what is connected to: no lookalike letters, %-escapes, \\
        raise UsageError(
            f"endpoint host {host!r} is not a plain host name (letters a-z, digits, '-' and '.')."
            "\nHINT: write an internationalised name in its xn-- (punycode) form"
        )
    if parts.scheme == "http" and not is_loopback(url):
        raise UsageError(
            f"endpoint {url!r} uses http:// on a non-loopback host: tokens would travel in clear."
            "\nHINT: use https://, or http:// only with localhost, 127.0.0.1 or [::1]"
        )
    expected = urlsplit(cloud.endpoint).hostname
    if host == expected and port in (None, 443):
        return "cloud"
    if is_loopback(url):
        return "loopback"
    if host in allowed:
        return "--allow-endpoint"
    where = host if port is None else f"{host}:{port}"
    raise UsageError(
        f"endpoint host {where!r} is not {cloud.name}'s management host {expected!r} (port 443),"
        " and the bearer token would be sent to it."
        f"\nHINT: if {host!r} is yours (an ARM gateway or mirror), allow it explicitly with"
        f" --allow-endpoint {host} or {ALLOW_ENDPOINT_VAR}={host}; or choose its --cloud"
    )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
