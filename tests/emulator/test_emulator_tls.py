"""The emulator over https (``--tls-cert``/``--tls-key``), with a throwaway CA from trustme."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from batchrun.emulator import process
from batchrun.emulator.config import load_config
from batchrun.emulator.process import EmulatorProcess
from tests.helpers.paths import ROOT

CREATE_RUN = (
    "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-data"
    "/providers/Microsoft.DataFactory/factories/sales-eu/pipelines/LoadOrders/createRun"
    "?api-version=2018-06-01"
)


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    for blob in issued.cert_chain_pems:
        blob.write_to_path(str(files.cert), append=True)
    issued.private_key_pem.write_to_path(str(files.key))
    return files


@pytest.fixture
def start_tls_emulator(
    tls_files: TlsFiles, tmp_path: Path
) -> Iterator[Callable[..., EmulatorProcess]]:
    started: list[EmulatorProcess] = []

    def start(*args: str) -> EmulatorProcess:
        emulator = process.start(
            ["--tls-cert", str(tls_files.cert), "--tls-key", str(tls_files.key), *args],
            log_path=tmp_path / f"emulator-{len(started)}.log",
            cwd=ROOT,
            cafile=tls_files.ca,
        )
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


def _post(url: str, context: ssl.SSLContext) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(
        url, data=b"{}", method="POST", headers={"Authorization": "Bearer t"}
    )
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        return response.status, dict(response.headers)


def test_tls_options_serve_https_that_the_ca_verifies(
    start_tls_emulator: Callable[..., EmulatorProcess], tls_files: TlsFiles
) -> None:
    emulator = start_tls_emulator("--accept-any", "--quiet")
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+", emulator.url)
    context = ssl.create_default_context(cafile=tls_files.ca)
    status, headers = _post(emulator.url + CREATE_RUN, context)
    assert status == 200
    assert "x-ms-ratelimit-remaining-subscription-writes" in headers
    assert emulator.stats()["requests"]["createRun"] == {"200": 1}
    assert emulator.stop() == 0


def test_a_client_without_the_ca_refuses_the_certificate(
    start_tls_emulator: Callable[..., EmulatorProcess],
) -> None:
    emulator = start_tls_emulator("--accept-any", "--quiet")
    # trusts another throwaway CA only (not the system store, which SSL_CERT_FILE may widen)
    untrusting = ssl.create_default_context(cadata=trustme.CA().cert_pem.bytes().decode())
    with pytest.raises(urllib.error.URLError) as caught:
        _post(emulator.url + CREATE_RUN, untrusting)
    assert isinstance(caught.value.reason, ssl.SSLCertVerificationError)


def test_plain_http_to_the_https_port_gets_no_answer(
    start_tls_emulator: Callable[..., EmulatorProcess],
) -> None:
    emulator = start_tls_emulator("--accept-any", "--quiet")
    plain = emulator.url.replace("https://", "http://")
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(plain + "/_emulator/stats", timeout=10)
    assert emulator.stats()["requests"] == {}


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
    result = subprocess.run(
        [sys.executable, "-m", "batchrun.emulator", "--accept-any", "--port", "0", *tls],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_tls_files_in_a_config_are_relative_to_it(tls_files: TlsFiles, tmp_path: Path) -> None:
    config = tmp_path / "emulator.yaml"
    config.write_text("accept_any: true\nsettings: {tls_cert: cert.pem, tls_key: key.pem}\n")
    settings = load_config(config).settings
    assert settings["tls_cert"] == str(tls_files.cert)
    assert settings["tls_key"] == str(tls_files.key)
