"""One subscription's 401 is not everyone's, end to end: a subscription of another tenant stops
alone; a token refused everywhere stops the batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from batchrun.emulator.tenancy import tenant_of
from tests.helpers.cli import (
    SUB_A,
    SUB_B,
    StartEmulator,
    create_answers,
    manifest_text,
    run_cli,
    start,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e

FOREIGN = "33333333-3333-3333-3333-333333333333"


def test_a_foreign_tenant_subscription_fails_alone_and_the_others_finish(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start(
        start_emulator, "--accept-any", "--foreign-tenant-subscriptions", FOREIGN,
        "--latency-ms", "5",
    )  # fmt: skip
    manifest = manifest_text(90, subscriptions=(SUB_A, FOREIGN, SUB_B))
    result = run_cli(tmp_path, emulator, manifest, "--concurrency", "4")
    assert result.code == 1, result.stderr[-2000:]
    lines = result.lines()
    assert len(lines) == 90
    by_subscription: dict[str, set[str]] = {}
    for line in lines:
        by_subscription.setdefault(line["subscription"], set()).add(line["status"])
    assert by_subscription == {SUB_A: {"succeeded"}, SUB_B: {"succeeded"}, FOREIGN: {"failed"}}
    assert emulator.stats()["runs_created"] == 60
    foreign = [line for line in lines if line["subscription"] == FOREIGN]
    for line in foreign:
        assert line["error"]["code"] == "InvalidAuthenticationTokenTenant"
        assert f"AZURE_TENANT_ID={tenant_of(FOREIGN)}" in line["error"]["message"]
    # few were sent: the first refusal stops the subscription's sending
    assert create_answers(emulator)["401"] <= 8
    assert sum(1 for line in foreign if line["http_status"] is None) >= 22


def test_when_no_subscription_can_authenticate_the_exit_is_3(
    tmp_path: Path, start_emulator: StartEmulator
) -> None:
    other = "44444444-4444-4444-4444-444444444444"
    emulator = start(
        start_emulator, "--accept-any", "--foreign-tenant-subscriptions", f"{FOREIGN},{other}"
    )
    result = run_cli(tmp_path, emulator, manifest_text(10, subscriptions=(FOREIGN, other)))
    assert result.code == 3, result.stderr[-2000:]
    assert "InvalidAuthenticationTokenTenant" in result.stderr
    assert emulator.stats()["runs_created"] == 0
