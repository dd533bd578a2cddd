"""``run --only-missing --since T``: how T is read (in-process: no subprocess, no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batchrun.cli.main import build_parser
from batchrun.cli.run import only_missing_settings, since_time
from batchrun.errors import UsageError
from batchrun.run.missing import DEFAULT_SINCE

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "since"),
    [
        ("7d", NOW - timedelta(days=7)),
        ("36h", NOW - timedelta(hours=36)),
        ("90m", NOW - timedelta(minutes=90)),
        (" 2D ", NOW - timedelta(days=2)),
        ("2026-11-25T23:00+01:00", datetime(2026, 11, 25, 22, 0, tzinfo=UTC)),
        ("2026-11-20T00:00Z", datetime(2026, 11, 20, tzinfo=UTC)),
    ],
)
def test_since_is_a_duration_back_from_now_or_a_zoned_time(text: str, since: datetime) -> None:
    assert since_time(text, now=NOW) == since


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("7", "is not a duration"),
        ("2w", "is not a duration"),
        ("2026-11-25T22:00", "has no time zone"),
        ("yesterday", "is not an ISO 8601 date and time"),
        ("99999999d", "reaches back before the year 1"),
    ],
)
def test_a_since_that_is_neither_is_refused_with_the_forms_it_takes(
    text: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        since_time(text, now=NOW)


def test_only_missing_looks_7_days_back_by_default() -> None:
    args = build_parser("run").parse_args(["run", "m.yaml", "--only-missing"])
    settings = only_missing_settings(args, now=NOW)
    assert settings is not None and settings.since == NOW - DEFAULT_SINCE == NOW - timedelta(7)


def test_without_only_missing_nothing_is_searched() -> None:
    args = build_parser("run").parse_args(["run", "m.yaml"])
    assert only_missing_settings(args, now=NOW) is None
