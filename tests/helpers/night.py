"""A synthetic night for the report tests: trigger lines and outcome lines of N runs over P
pipelines, some failing to trigger, some failing in ADF, one reconciled, some retried."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

MIDNIGHT = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
MONITOR = "https://adf.azure.com/en/monitoring/pipelineruns/guid-{id}?factory=/subscriptions/s"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def night_lines(runs: int, *, pipelines: int = 6, factories: int = 2) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for n in range(runs):
        trigger = MIDNIGHT + timedelta(seconds=n * 0.5)
        base = {
            "id": f"run-{n:05d}",
            "subscription": "11111111-1111-1111-1111-111111111111",
            "resource_group": "rg",
            "factory": f"factory-{n % factories}",
            "pipeline": f"Load{n % pipelines}",
            "run_id": f"guid-{n}",
            "attempts": 2 if n % 17 == 0 else 1,
            "started_at": _iso(trigger),
            "finished_at": _iso(trigger + timedelta(milliseconds=150)),
            "duration_ms": 150,
            "reconciled": n == 3,  # an outcome line repeats its trigger's fields
        }
        if n % 50 == 7:
            lines.append(
                base
                | {
                    "status": "failed",
                    "run_id": None,
                    "http_status": 429,
                    "error": {"code": "SubscriptionRequestsThrottled", "message": "slow down"},
                }
            )
            continue
        lines.append(base | {"status": "succeeded"})
        start = trigger + timedelta(seconds=5 + n % 30)
        end = start + timedelta(seconds=60 + n % 90)
        outcome = "Failed" if n % 25 == 4 else "Succeeded"
        ended: dict[str, Any] = base | {
            "status": "succeeded",
            "outcome": outcome,
            "run_start": _iso(start),
            "run_end": _iso(end),
            "run_duration_ms": int((end - start).total_seconds() * 1000),
            "queued_ms": int((start - trigger).total_seconds() * 1000),
            "monitor_url": MONITOR.format(id=n),
        }
        if outcome == "Failed":
            code = "2200" if n % 2 else "UserErrorSftp"
            ended["failure"] = {
                "activity": "CopyToSftp",
                "activity_type": "Copy",
                "code": code,
                "message": f"run {n}: the SFTP server <refused> the upload",
                "failure_type": "UserError",
            }
        lines.append(ended)
    return lines


def write_night(path: Path, runs: int, **options: Any) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in night_lines(runs, **options)))
    return path
