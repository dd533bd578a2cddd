"""The deployment recipes keep the report's lock real between replicas."""

from __future__ import annotations

from typing import Any

import yaml

from tests.helpers.paths import ROOT

DEPLOY = ROOT / "configs" / "deploy"


def recipe(name: str) -> list[dict[str, Any]]:
    text = (DEPLOY / name).read_text(encoding="utf-8")
    return [doc for doc in yaml.safe_load_all(text) if doc]


def test_the_reports_share_is_mounted_with_server_side_locks() -> None:
    (app,) = recipe("containerapps-job.yaml")
    volumes = app["properties"]["template"]["volumes"]
    options = {
        option.split("=")[0]
        for volume in volumes
        for option in volume.get("mountOptions", "").split(",")
    }
    # nobrl keeps byte-range (and flock) locks on the client: two replicas would both hold one
    assert "nobrl" not in options
