"""``batchrun watch REPORT``: follow the runs of a report to their end; append how each ended.

Exit codes: ``0`` every run of the report triggered and ``Succeeded``; ``1`` otherwise (a run
failed to trigger, ended ``Failed``/``Cancelled``, or timed out); ``2`` a usage or report error;
``3`` no token, or ARM rejected it; ``130``/``143`` interrupted (``watch`` again to go on).

The options ``--poll``, ``--timeout`` and ``--on-timeout`` are shared with ``run --wait``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from batchrun.arm.session import credential_tokens
from batchrun.cli.exits import EXIT_AUTH, EXIT_FAILED, EXIT_OK, EXIT_SIGNAL
from batchrun.cli.options import (
    add_connection_options,
    add_log_options,
    add_notify_options,
    cloud_and_endpoint,
    positive_float,
    retry_settings,
    timeouts,
)
from batchrun.errors import ApiError
from batchrun.report.render import render
from batchrun.report.summary import summarize
from batchrun.run.following import FollowSettings

if TYPE_CHECKING:
    from batchrun.arm.cloud import Cloud
    from batchrun.arm.timeouts import Timeouts
    from batchrun.run.watch import WatchOutcome

NAME = "watch"
HELP = "follow the runs of a report to their end"
UNDONE = "nothing was read"

_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>[smh]?)", re.IGNORECASE)
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600}


def duration(text: str) -> float:
    """``90s``, ``45m``, ``2h`` or a bare number of seconds; finite and above 0."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: use seconds (90 or 90s), minutes (45m) or hours (2h)"
        )
    seconds = float(match["number"]) * _UNIT_S[match["unit"].lower()]
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration must be greater than 0")
    return seconds


def add_follow_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--poll",
        type=positive_float,
        default=FollowSettings().poll_s,
        metavar="SECONDS",
        help="longest wait between polls (shorter while runs are young); default 30",
    )
    parser.add_argument(
        "--timeout",
        type=duration,
        metavar="DURATION",
        help="a run still running this long after its trigger is TimedOut (90s, 45m, 2h)",
    )
    parser.add_argument(
        "--on-timeout",
        choices=["report", "cancel"],
        default="report",
        help="report: stop following a timed-out run (default); cancel: cancel it too",
    )


def follow_settings(args: argparse.Namespace) -> FollowSettings:
    return FollowSettings(
        poll_s=args.poll,
        timeout_s=args.timeout,
        on_timeout=args.on_timeout,
        retry=retry_settings(args),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", type=Path, metavar="REPORT")
    add_follow_options(parser)
    add_connection_options(
        parser, concurrency=8, concurrency_help="factories read at once", retried="read"
    )
    add_notify_options(parser)
    add_log_options(parser)


def command(args: argparse.Namespace) -> int:
    cloud, endpoint = cloud_and_endpoint(args)
    return follow(
        args.report,
        follow_settings(args),
        endpoint=endpoint,
        cloud=cloud,
        timeouts=timeouts(args),
    )


def follow(
    report: Path, settings: FollowSettings, *, endpoint: str, cloud: Cloud, timeouts: Timeouts
) -> int:
    """Follow ``report``'s runs, print how the night went, and return the exit code."""
    try:
        outcome = asyncio.run(_watch(report, settings, endpoint, cloud, timeouts))
    except ApiError as exc:
        if exc.status not in (401, 403):
            raise
        print(
            f"batchrun: ARM rejected the token while following ({exc.code}: {exc.message}); "
            f"fix the identity and run: batchrun watch {report}",
            file=sys.stderr,
        )
        return EXIT_AUTH
    return finish(outcome, report)


async def _watch(
    report: Path, settings: FollowSettings, endpoint: str, cloud: Cloud, timeouts: Timeouts
) -> WatchOutcome:
    # here: `run` shares this module's options, not its following
    from batchrun.run.watch import watch_report

    async with credential_tokens(cloud) as tokens:
        return await watch_report(
            report, settings, endpoint=endpoint, tokens=tokens, timeouts=timeouts
        )


def finish(outcome: WatchOutcome, report: Path) -> int:
    result = outcome.result
    if result is not None:
        counts = ", ".join(f"{n} {name}" for name, n in sorted(result.outcomes.items()))
        print(
            f"followed {outcome.followed} runs: {counts or 'none ended'} "
            f"({result.polls} polls, {result.reads} reads)"
        )
    print()
    print(render(summarize([report]), "table"))
    print(f"report: {report}")
    if outcome.signal is not None:
        left = result.unfinished if result is not None else 0
        print(
            f"interrupted by {outcome.signal.name}: {left} runs still followed; "
            f"go on with: batchrun watch {report}"
        )
        return EXIT_SIGNAL[outcome.signal]
    if result is not None and result.unfinished:
        print(f"stopped following {result.unfinished} runs that had not ended", file=sys.stderr)
    verdict = outcome.verdict
    if verdict.ok:
        return EXIT_OK
    print(
        f"not every run succeeded: {verdict.succeeded} of {verdict.runs} Succeeded, "
        f"{verdict.not_triggered} not triggered, {verdict.unfinished} not ended, "
        + ", ".join(
            f"{n} {name}" for name, n in sorted(verdict.outcomes.items()) if name != "Succeeded"
        ),
        file=sys.stderr,
    )
    return EXIT_FAILED
