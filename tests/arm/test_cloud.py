import io
import json
import re
from collections.abc import Iterator

import pytest
import structlog

from batchrun import log
from batchrun.arm.cloud import (
    CLOUDS,
    allowed_hosts,
    get_cloud,
    is_loopback,
    resolve_endpoint,
)
from batchrun.errors import UsageError

PUBLIC = CLOUDS["AzurePublicCloud"]


@pytest.mark.parametrize(
    ("name", "endpoint", "scope"),
    [
        (
            "AzurePublicCloud",
            "https://management.azure.com/",
            "https://management.azure.com/.default",
        ),
        (
            "AzureUSGovernment",
            "https://management.usgovcloudapi.net/",
            "https://management.usgovcloudapi.net/.default",
        ),
        (
            "AzureChinaCloud",
            "https://management.chinacloudapi.cn/",
            "https://management.chinacloudapi.cn/.default",
        ),
    ],
)
def test_known_clouds_have_their_endpoint_and_scope(name: str, endpoint: str, scope: str) -> None:
    cloud = get_cloud(name)
    assert (cloud.name, cloud.endpoint, cloud.scope) == (name, endpoint, scope)


@pytest.mark.parametrize(
    ("name", "cloud"),
    [
        ("azurepubliccloud", "AzurePublicCloud"),
        (" AZUREUSGOVERNMENT ", "AzureUSGovernment"),
        ("azurechinacloud", "AzureChinaCloud"),
        ("AzureCloud", "AzurePublicCloud"),
        ("azurecloud", "AzurePublicCloud"),
    ],
)
def test_cloud_names_are_case_insensitive_and_accept_the_az_cli_alias(
    name: str, cloud: str
) -> None:
    assert get_cloud(name).name == cloud


def test_unknown_cloud_lists_the_known_ones_and_suggests_the_closest() -> None:
    with pytest.raises(UsageError) as caught:
        get_cloud("AzureChinaClod")
    message = str(caught.value)
    assert all(name in message for name in CLOUDS)
    assert "did you mean 'AzureChinaCloud'?" in message


def test_unknown_cloud_without_a_close_match_has_no_hint() -> None:
    with pytest.raises(UsageError) as caught:
        get_cloud("mars")
    assert "did you mean" not in str(caught.value)


def test_clouds_cannot_be_modified() -> None:
    with pytest.raises(TypeError):
        CLOUDS["Evil"] = PUBLIC  # type: ignore[index]


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://127.1.2.3/", True),
        ("http://[::1]:8080/", True),
        ("http://localhost:8080", True),
        ("http://LOCALHOST", True),
        ("http://example.com", False),
        ("http://128.0.0.1", False),
        ("http://localhost.example.com", False),
        ("http://[::2]", False),
        ("not a url", False),
        ("http://[::1", False),
    ],
)
def test_is_loopback(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback


@pytest.mark.parametrize("override", [None, "", "   "])
def test_no_override_gives_the_cloud_endpoint_without_trailing_slash(override: str | None) -> None:
    assert resolve_endpoint(PUBLIC, override) == "https://management.azure.com"


@pytest.mark.parametrize(
    ("override", "resolved"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("http://localhost:9000/arm/", "http://localhost:9000/arm"),
        ("https://127.0.0.1:8443/", "https://127.0.0.1:8443"),
        (" https://management.azure.com// ", "https://management.azure.com"),
        ("https://MANAGEMENT.azure.com:443/", "https://MANAGEMENT.azure.com:443"),
    ],
)
def test_override_replaces_the_url(override: str, resolved: str) -> None:
    assert resolve_endpoint(PUBLIC, override) == resolved


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ("http://example.com", "non-loopback"),
        ("http://10.0.0.1:8080", "non-loopback"),
        ("ftp://127.0.0.1", "absolute http(s) URL"),
        ("127.0.0.1:8080", "absolute http(s) URL"),
        ("/relative/path", "absolute http(s) URL"),
        ("https://", "absolute http(s) URL"),
        ("https://example.com:notaport", "not a valid URL"),
        ("https://user:secret@example.com", "user:password@"),
        ("https://example.com/?x=1", "query string"),
        ("https://example.com/#frag", "fragment"),
    ],
)
def test_bad_overrides_are_usage_errors(override: str, complaint: str) -> None:
    with pytest.raises(UsageError, match=re.escape(complaint)):
        resolve_endpoint(PUBLIC, override)


def test_credentials_in_a_bad_override_are_not_echoed() -> None:
    with pytest.raises(UsageError) as caught:
        resolve_endpoint(PUBLIC, "https://user:secret@example.com")
    assert "secret" not in str(caught.value)


# --- the token goes where the endpoint points: only the cloud's host, loopback, or an allowed host


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ("https://arm.contoso.example", "'arm.contoso.example'"),
        ("https://management.azure.com.evil.example", "'management.azure.com.evil.example'"),
        ("https://evil.example/management.azure.com", "'evil.example'"),
        ("https://evil.example/?https://management.azure.com", "query string"),
        ("https://management.azure.com@evil.example", "user:password@"),
        ("https://evil.example#@management.azure.com", "fragment"),
        ("https://evil.example\\@management.azure.com", "user:password@"),
        ("https://management.azure.com:8443", "'management.azure.com:8443'"),
        ("https://management.azure.com.", "'management.azure.com.'"),
        ("https://management.usgovcloudapi.net", "'management.usgovcloudapi.net'"),
        ("https://managem\u0435nt.azure.com", "not a plain host name"),  # Cyrillic e
        ("https://management\uff0eazure.com", "not a plain host name"),  # fullwidth dot
        ("https://management%2Eazure.com", "not a plain host name"),
        ("https://xn--mangement-7za.azure.com", "'xn--mangement-7za.azure.com'"),
        ("https://10.0.0.1", "'10.0.0.1'"),
        ("https://0x7f.1", "'0x7f.1'"),
        ("https://[::ffff:127.0.0.1]", "'::ffff:127.0.0.1'"),
        ("https://localhost.", "'localhost.'"),
        ("https://localhost.evil.example", "'localhost.evil.example'"),
    ],
)
def test_endpoints_off_the_cloud_are_refused(override: str, complaint: str) -> None:
    with pytest.raises(UsageError, match=re.escape(complaint)):
        resolve_endpoint(PUBLIC, override)


def test_the_refusal_names_the_host_the_cloud_expects_and_the_opt_in() -> None:
    gov = get_cloud("AzureUSGovernment")
    with pytest.raises(UsageError) as caught:
        resolve_endpoint(gov, "https://management.azure.com")
    message = str(caught.value)
    assert "'management.azure.com' is not AzureUSGovernment's" in message
    assert "'management.usgovcloudapi.net'" in message
    assert "--allow-endpoint management.azure.com" in message
    assert "BATCHRUN_ALLOW_ENDPOINT=management.azure.com" in message


@pytest.mark.parametrize(
    ("cloud", "endpoint"),
    [
        ("AzurePublicCloud", "https://management.azure.com"),
        ("AzureUSGovernment", "https://management.usgovcloudapi.net"),
        ("AzureChinaCloud", "https://management.chinacloudapi.cn"),
    ],
)
def test_each_cloud_accepts_its_own_host(cloud: str, endpoint: str) -> None:
    assert set(CLOUDS) == {"AzurePublicCloud", "AzureUSGovernment", "AzureChinaCloud"}
    assert resolve_endpoint(CLOUDS[cloud], endpoint + "/") == endpoint


def test_an_allowed_host_may_be_any_https_url_on_it() -> None:
    allowed = allowed_hosts(["ARM.Contoso.Example"], {})
    url = "https://arm.contoso.example:8443/proxy/"
    assert (
        resolve_endpoint(PUBLIC, url, allowed=allowed) == "https://arm.contoso.example:8443/proxy"
    )


@pytest.mark.parametrize(
    "override",
    [
        "http://arm.contoso.example",  # allowed or not, a non-loopback host gets https only
        "https://arm.contoso.example.evil.example",
        "https://evil.example/arm.contoso.example",
        "https://arm.contoso.example@evil.example",
    ],
)
def test_allowing_a_host_allows_no_other_and_no_http(override: str) -> None:
    with pytest.raises(UsageError):
        resolve_endpoint(PUBLIC, override, allowed=allowed_hosts(["arm.contoso.example"], {}))


def test_allowed_hosts_come_from_flags_and_the_environment() -> None:
    environ = {"BATCHRUN_ALLOW_ENDPOINT": " b.example, ,[::2],"}
    assert allowed_hosts(["A.example"], environ) == {"a.example", "b.example", "::2"}
    assert allowed_hosts(None, {}) == frozenset()


@pytest.mark.parametrize(
    "entry", ["https://arm.example", "arm.example:443", "arm.example/x", "ex\u0430mple.com", "*"]
)
def test_allowed_hosts_are_bare_host_names(entry: str) -> None:
    with pytest.raises(UsageError, match="not a host name"):
        allowed_hosts([entry], {})


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    log.configure(fmt="json", level="info", stream=stream)
    yield stream
    structlog.reset_defaults()


@pytest.mark.parametrize(
    ("override", "host", "why"),
    [
        (None, "management.azure.com", "cloud"),
        ("http://127.0.0.1:9", "127.0.0.1", "loopback"),
        ("https://arm.contoso.example", "arm.contoso.example", "--allow-endpoint"),
    ],
)
def test_the_endpoint_host_in_use_is_logged_once(
    logged: io.StringIO, override: str | None, host: str, why: str
) -> None:
    resolve_endpoint(PUBLIC, override, allowed={"arm.contoso.example"})
    lines = [json.loads(line) for line in logged.getvalue().splitlines()]
    assert [(e["event"], e["host"], e["cloud"], e["allowed_by"]) for e in lines] == [
        ("endpoint", host, "AzurePublicCloud", why)
    ]
