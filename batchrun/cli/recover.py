"""``batchrun recover``: the command line edge of :mod:`batchrun.recover.search`.

Exit codes: ``0`` the plan was made (the manifest written, or ``--dry-run``, or nothing to
recover); ``1`` a factory could not be searched (nothing written); ``2`` a usage, scope or
output-file error (nothing searched); ``3`` no token, or ARM rejected it (nothing written).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from batchrun.arm.session import credential_tokens, open_client
from batchrun.cli.exits import EXIT_AUTH, EXIT_FAILED, EXIT_OK
from batchrun.cli.options import (
    add_connection_options,
    add_log_options,
    cloud_and_endpoint,
    retry_settings,
    timeouts,
)
from batchrun.errors import UsageError
from batchrun.manifest.scope import Scope, load_scope
from batchrun.recover.output import check_output, render_manifest, render_summary, write_manifest
from batchrun.recover.search import (
    DEFAULT_STATUSES,
    FROM_FAILURE,
    FROM_START,
    RECOVERABLE,
    RecoverSettings,
    RecoveryPlan,
    StartPoint,
    Window,
    find_recoveries,
    retention_warning,
)
from batchrun.times import parse_time, utc_now

if TYPE_CHECKING:
    from batchrun.arm.cloud import Cloud
    from batchrun.arm.timeouts import Timeouts

NAME = "recover"
HELP = "find failed runs; write a recovery manifest"
UNDONE = "nothing was searched"
_STATUS_NAMES = {status.casefold(): status for status in RECOVERABLE} | {"canceled": "Cancelled"}


def _status(text: str) -> str:
    status = _STATUS_NAMES.get(text.strip().casefold())
    if status is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a status to recover: choose {', '.join(RECOVERABLE)}"
        )
    return status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scope",
        type=Path,
        required=True,
        metavar="FILE",
        help="the factories to search: a scope file (version, factories) or a manifest",
    )
    parser.add_argument(
        "--since",
        required=True,
        metavar="TIME",
        help="start of the window, ISO 8601 with Z or an offset (2026-11-25T22:00Z)",
    )
    parser.add_argument("--until", metavar="TIME", help="end of the window (default: now)")
    parser.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="the recovery manifest to write"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing -o file")
    parser.add_argument(
        "--pipeline",
        action="append",
        default=[],
        metavar="GLOB",
        help="only these pipelines (repeatable; * ? [..] globs, case-insensitive)",
    )
    parser.add_argument(
        "--status",
        action="append",
        type=_status,
        metavar="STATUS",
        help=f"statuses to recover (repeatable; default: {' and '.join(DEFAULT_STATUSES)})",
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--from-start",
        action="store_true",
        help="rerun every activity (default: start from the failed activity)",
    )
    start.add_argument("--start-activity", metavar="NAME", help="rerun from this activity")
    parser.add_argument("--dry-run", action="store_true", help="print the summary, write nothing")
    add_connection_options(
        parser, concurrency=8, concurrency_help="factories searched at once", retried="query"
    )
    add_log_options(parser)


def parse_option_time(text: str, *, option: str) -> datetime:
    """An ISO 8601 time with a zone (``Z`` or an offset; seconds optional), in UTC."""
    example = "e.g. 2026-11-25T22:00Z or 2026-11-25T23:00+01:00"
    if parse_time(text, naive_is_utc=True) is None:
        raise UsageError(f"{option} {text!r} is not an ISO 8601 date and time ({example})")
    moment = parse_time(text)
    if moment is None:
        raise UsageError(
            f"{option} {text!r} has no time zone: add Z for UTC or an offset ({example})"
        )
    return moment.astimezone(UTC)


def settings_from(args: argparse.Namespace, *, now: datetime) -> RecoverSettings:
    since = parse_option_time(args.since, option="--since")
    until = parse_option_time(args.until, option="--until") if args.until else now
    if since >= until:
        raise UsageError(
            f"--since {since:%Y-%m-%dT%H:%M:%SZ} is not before --until {until:%Y-%m-%dT%H:%M:%SZ}"
            + ("" if args.until else " (now)")
        )
    start = FROM_FAILURE
    if args.from_start:
        start = FROM_START
    elif args.start_activity is not None:
        name = args.start_activity.strip()
        if not name or not name.isprintable():
            raise UsageError(f"--start-activity {args.start_activity!r} is not an activity name")
        start = StartPoint(activity=name)
    pipelines = tuple(pattern.strip() for pattern in args.pipeline)
    if any(not pattern for pattern in pipelines):
        raise UsageError("--pipeline needs a pipeline name or glob, not an empty string")
    return RecoverSettings(
        window=Window(since, until),
        statuses=tuple(dict.fromkeys(args.status or DEFAULT_STATUSES)),
        pipelines=pipelines,
        start=start,
        concurrency=args.concurrency,
        retry=retry_settings(args),
    )


def command(args: argparse.Namespace) -> int:
    now = utc_now()
    settings = settings_from(args, now=now)
    retention = retention_warning(settings.window, now=now)
    if retention is not None:
        print(f"batchrun: warning: {retention}", file=sys.stderr)
    if args.output is None and not args.dry_run:
        raise UsageError("give -o FILE for the recovery manifest, or --dry-run to only look")
    scope = load_scope(args.scope, environ=os.environ)
    for warning in scope.warnings:
        print(f"batchrun: warning: {warning}", file=sys.stderr)
    cloud, endpoint = cloud_and_endpoint(args)
    if not args.dry_run:
        check_output(args.output, force=args.force)
    plan = asyncio.run(_search(scope, settings, endpoint, cloud, timeouts(args)))
    print(render_summary(plan))
    if plan.auth_error is not None:
        print(
            f"batchrun: the token was rejected ({plan.auth_error}); nothing was written",
            file=sys.stderr,
        )
        return EXIT_AUTH
    if plan.failures:
        print(
            f"batchrun: {len(plan.failures)} of {len(scope.factories)} factories could not be "
            "searched; nothing was written (fix them, or leave them out of --scope)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    count, how = len(plan.recoveries), settings.start.describe()
    if count == 0:
        print("nothing to recover; no manifest written")
    elif args.dry_run:
        print(f"dry run: {count} runs would be recovered {how}; nothing written")
    else:
        write_manifest(
            args.output, render_manifest(plan, output=str(args.output)), force=args.force
        )
        print(f"wrote {args.output}: {count} runs to recover {how}")
        print(f"review it, then: batchrun run {args.output}")
    return EXIT_OK


async def _search(
    scope: Scope, settings: RecoverSettings, endpoint: str, cloud: Cloud, timeouts: Timeouts
) -> RecoveryPlan:
    async with (
        credential_tokens(cloud) as tokens,
        open_client(
            endpoint=endpoint, tokens=tokens, timeouts=timeouts, connections=settings.concurrency
        ) as client,
    ):
        return await find_recoveries(client, scope.factories, settings)
