"""`--cloud` through the real CLI: any case, the `AzureCloud` alias, and the host it sends to."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from tests.helpers.cli import batchrun_offline, manifest_text

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e


def _offline_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("BATCHRUN_", "AZURE_"))}


@pytest.mark.parametrize(
    ("name", "host"),
    [
        ("AzureCloud", "management.azure.com"),
        ("azurepubliccloud", "management.azure.com"),
        ("AZUREUSGOVERNMENT", "management.usgovcloudapi.net"),
        ("azurechinacloud", "management.chinacloudapi.cn"),
    ],
)
def test_the_cloud_name_is_taken_in_any_case_and_picks_its_host(
    tmp_path: Path, name: str, host: str
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(manifest_text(2))
    done = batchrun_offline("run", str(manifest), "--dry-run", "--cloud", name, env=_offline_env())
    assert done.returncode == 0, done.stderr
    urls = [line.split("\t")[2] for line in done.stdout.splitlines()]
    assert len(urls) == 2
    assert all(url.startswith(f"https://{host}/subscriptions/") for url in urls), urls


def test_an_unknown_cloud_is_a_usage_error_naming_the_clouds(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(manifest_text(1))
    done = batchrun_offline(
        "run", str(manifest), "--dry-run", "--cloud", "Mars", env=_offline_env()
    )
    assert done.returncode == 2
    assert "AzureUSGovernment" in done.stderr and "Traceback" not in done.stderr
