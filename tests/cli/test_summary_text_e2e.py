"""`batchrun summary` prints what a report holds, even text with no UTF-8: a lone surrogate that
an answer's JSON escaped is shown as its escape, never a traceback half-way through the table."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.helpers.cli import CLI_TIMEOUT_S

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e


def test_a_message_with_a_lone_surrogate_is_printed_as_its_escape(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    line = {
        "id": "a", "subscription": "s", "resource_group": "rg", "factory": "f",
        "pipeline": "p", "status": "failed", "attempts": 1,
        "error": {"code": "BadRequest", "message": "odd \ud800 text"},
        "started_at": "2026-12-03T02:00:00.000Z", "finished_at": "2026-12-03T02:00:01.000Z",
    }  # fmt: skip
    report.write_text(json.dumps(line) + "\n", encoding="ascii")
    shown = subprocess.run(
        [sys.executable, "-m", "batchrun", "summary", str(report)],
        capture_output=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert shown.returncode == 1, shown.stderr  # a run failed: not a crash (2)
    assert b"Traceback" not in shown.stderr
    assert b"odd \\ud800 text" in shown.stdout
    assert b"BadRequest" in shown.stdout
