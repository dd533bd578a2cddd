"""Azure clouds: where the management API lives, which token scope it accepts, and where its
identities sign in (the Microsoft Entra authority host).

An endpoint override (``--endpoint`` or ``BATCHRUN_ENDPOINT``, e.g. the local emulator) replaces
the URL only; tokens are still asked for the cloud's scope.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import urlsplit

from batchrun.errors import UsageError


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


def resolve_endpoint(cloud: Cloud, override: str | None) -> str:
    """The management endpoint to send to, without a trailing slash.

    ``override`` replaces ``cloud.endpoint`` when given. It must be an absolute ``https://`` URL,
    or ``http://`` on a loopback host (the emulator); it may carry a path prefix but no query,
    fragment or credentials.
    """
    if override is None or not override.strip():
        return cloud.endpoint.rstrip("/")
    url = override.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what validates it
    except ValueError as exc:
        raise UsageError(f"endpoint {url!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"endpoint {url!r} must be an absolute http(s) URL, e.g. https://management.azure.com"
        )
    if parts.username is not None or parts.password is not None:
        raise UsageError(f"endpoint for host {parts.hostname!r} must not carry user:password@")
    if parts.query or parts.fragment:
        raise UsageError(f"endpoint {url!r} must not have a query string or fragment")
    if parts.scheme == "http" and not is_loopback(url):
        raise UsageError(
            f"endpoint {url!r} uses http:// on a non-loopback host: tokens would travel in clear."
            "\nHINT: use https://, or http:// only with localhost, 127.0.0.1 or [::1]"
        )
    return url.rstrip("/")
