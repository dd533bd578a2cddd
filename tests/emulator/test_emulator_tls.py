"""The emulator over https (``--tls-cert``/``--tls-key``), with a throwaway CA from trustme."""

from __future__ import annotations

import re
import ssl
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import pytest
import trustme

from batchrun.emulator.config import load_config
from batchrun.emulator.process import READY_TIMEOUT_S, EmulatorProcess
from tests.helpers.emulator import StartEmulator, emulator_exit

if TYPE_CHECKING:
    from pathlib import Path

    from tests.helpers.tls import TlsFiles

CREATE_RUN = (
    "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-data"
    "/providers/Microsoft.DataFactory/factories/sales-eu/pipelines/LoadOrders/createRun"
    "?api-version=2018-06-01"
)


@pytest.fixture
def start_tls_emulator(start_emulator: StartEmulator, tls_files: TlsFiles) -> StartEmulator:
    def start(
        *args: str, timeout: float = READY_TIMEOUT_S, cafile: Path | None = None
    ) -> EmulatorProcess:
        tls = ("--tls-cert", str(tls_files.cert), "--tls-key", str(tls_files.key))
        return start_emulator(*tls, *args, timeout=timeout, cafile=cafile or tls_files.ca)

    return start


def _post(url: str, context: ssl.SSLContext) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(
        url, data=b"{}", method="POST", headers={"Authorization": "Bearer t"}
    )
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        return response.status, dict(response.headers)


@pytest.mark.e2e
def test_tls_options_serve_https_that_the_ca_verifies(
    start_tls_emulator: StartEmulator, tls_files: TlsFiles
) -> None:
    emulator = start_tls_emulator("--accept-any", "--quiet")
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+", emulator.url)
    status, headers = _post(emulator.url + CREATE_RUN, tls_files.client_context())
    assert status == 200
    assert "x-ms-ratelimit-remaining-subscription-writes" in headers
    assert emulator.stats()["requests"]["createRun"] == {"200": 1}
    assert emulator.stop() == 0


@pytest.mark.e2e
def test_a_client_without_the_ca_refuses_the_certificate(
    start_tls_emulator: StartEmulator,
) -> None:
    emulator = start_tls_emulator("--accept-any", "--quiet")
    # trusts another throwaway CA only (not the system store, which SSL_CERT_FILE may widen)
    untrusting = ssl.create_default_context(cadata=trustme.CA().cert_pem.bytes().decode())
    with pytest.raises(urllib.error.URLError) as caught:
        _post(emulator.url + CREATE_RUN, untrusting)
    assert isinstance(caught.value.reason, ssl.SSLCertVerificationError)


@pytest.mark.e2e
def test_plain_http_to_the_https_port_gets_no_answer(
    start_tls_emulator: StartEmulator,
) -> None:
    emulator = start_tls_emulator("--accept-any", "--quiet")
    plain = emulator.url.replace("https://", "http://")
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(plain + "/_emulator/stats", timeout=10)
    assert emulator.stats()["requests"] == {}


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("cert-only", "tls_cert and tls_key go together"),
        ("key-mismatch", "cannot load the TLS certificate"),
        ("missing-file", "cannot load the TLS certificate"),
    ],
)
def test_unusable_tls_options_exit_2_with_the_reason(
    tls_files: TlsFiles, tmp_path: Path, which: str, message: str
) -> None:
    if which == "cert-only":
        tls = ["--tls-cert", str(tls_files.cert)]
    elif which == "key-mismatch":
        other = tmp_path / "other-key.pem"
        trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(other))
        tls = ["--tls-cert", str(tls_files.cert), "--tls-key", str(other)]
    else:
        tls = ["--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(tls_files.key)]
    result = emulator_exit("--accept-any", *tls)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_tls_files_in_a_config_are_relative_to_it(tls_files: TlsFiles, tmp_path: Path) -> None:
    config = tmp_path / "emulator.yaml"
    config.write_text("accept_any: true\nsettings: {tls_cert: cert.pem, tls_key: key.pem}\n")
    settings = load_config(config).settings
    assert settings["tls_cert"] == str(tls_files.cert)
    assert settings["tls_key"] == str(tls_files.key)
