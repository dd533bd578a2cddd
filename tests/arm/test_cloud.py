import re

import pytest

from batchrun.arm.cloud import CLOUDS, get_cloud, is_loopback, resolve_endpoint
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


@pytest.mark.parametrize("name", ["azurepubliccloud", " AZUREUSGOVERNMENT ", "AzureCloud"])
def test_cloud_names_are_case_insensitive_and_accept_the_az_cli_alias(name: str) -> None:
    assert get_cloud(name).name in CLOUDS


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
        ("https://arm.contoso.example/", "https://arm.contoso.example"),
        (" https://management.azure.com// ", "https://management.azure.com"),
    ],
)
def test_override_replaces_the_url(override: str, resolved: str) -> None:
    assert resolve_endpoint(PUBLIC, override) == resolved


def test_override_keeps_the_cloud_scope() -> None:
    gov = get_cloud("AzureUSGovernment")
    assert resolve_endpoint(gov, "http://127.0.0.1:1") == "http://127.0.0.1:1"
    assert gov.scope == "https://management.usgovcloudapi.net/.default"


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
