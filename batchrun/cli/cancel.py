"""``batchrun cancel``: cancel runs in bulk, the runs of a report or those a scope finds.

::

    batchrun cancel REPORT [--dry-run] [--yes] [--recursive]
    batchrun cancel --scope FILE --since T [--until T] [--pipeline GLOB]
                    [--status Queued,InProgress] [--dry-run] [--yes] [--recursive]

It first reads what is still running and prints it; ``--dry-run`` stops there. On a terminal
it asks before cancelling, unless ``--yes``; off a terminal, without ``--yes``, it refuses.

Exit codes: ``0`` every cancel was accepted (or there was nothing to cancel, or ``--dry-run``);
``1`` a cancel failed; ``2`` a usage, scope or report error, or no confirmation (nothing
cancelled); ``3`` no token, or ARM rejected it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from batchrun.arm.session import credential_tokens, open_client
from batchrun.cli.exits import EXIT_AUTH, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from batchrun.cli.options import (
    add_connection_options,
    add_log_options,
    cloud_and_endpoint,
    retry_settings,
    timeouts,
)
from batchrun.cli.recover import parse_option_time
from batchrun.errors import ApiError, ReportError, UsageError
from batchrun.manifest.scope import load_scope
from batchrun.run.cancel import CANCELLABLE, CancelResult, Target, cancel_all, report_targets
from batchrun.run.cancel import scope_targets as find_scope_targets
from batchrun.run.outcome import Followed, last_lines, to_follow
from batchrun.times import utc_now

if TYPE_CHECKING:
    from batchrun.arm.cloud import Cloud
    from batchrun.arm.timeouts import Timeouts

NAME = "cancel"
HELP = "cancel runs in bulk: a report's, or those a scope finds"
UNDONE = "nothing was cancelled"
_STATUS_NAMES = {status.casefold(): status for status in CANCELLABLE}


def _statuses(text: str) -> list[str]:
    found = []
    for part in text.split(","):
        status = _STATUS_NAMES.get(part.strip().casefold())
        if status is None:
            raise argparse.ArgumentTypeError(
                f"{part.strip()!r} cannot be cancelled: choose from {', '.join(CANCELLABLE)}"
            )
        found.append(status)
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", type=Path, nargs="?", metavar="REPORT")
    parser.add_argument("--scope", type=Path, metavar="FILE", help="a scope file or manifest")
    parser.add_argument("--since", metavar="TIME", help="with --scope: runs started from (UTC)")
    parser.add_argument("--until", metavar="TIME", help="with --scope: runs started before")
    parser.add_argument(
        "--pipeline",
        action="append",
        default=[],
        metavar="GLOB",
        help="with --scope: only these pipelines (repeatable; globs, case-insensitive)",
    )
    parser.add_argument(
        "--status",
        type=_statuses,
        default=list(CANCELLABLE),
        metavar="STATUSES",
        help="with --scope: comma-separated, of Queued,InProgress (default: both)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print what would be cancelled")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--recursive", action="store_true", help="also cancel the runs these runs started"
    )
    add_connection_options(
        parser, concurrency=8, concurrency_help="cancels in flight (paced)", retried="cancel"
    )
    add_log_options(parser)


def command(args: argparse.Namespace) -> int:
    _check(args)
    cloud, endpoint = cloud_and_endpoint(args)
    connection = (endpoint, cloud, timeouts(args))
    try:
        targets = asyncio.run(_targets(args, *connection))
        print(f"{len(targets)} runs to cancel" + (":" if targets else ""))
        for target in targets:
            print(f"  {target.describe()}")
        if not targets or args.dry_run:
            if targets:
                print("dry run: nothing was cancelled")
            return EXIT_OK
        if not _confirmed(args, len(targets)):
            return EXIT_USAGE
        result = asyncio.run(_cancel(args, targets, *connection))
    except ApiError as exc:
        if exc.status not in (401, 403):
            raise
        print(f"batchrun: ARM rejected the token ({exc.code}: {exc.message})", file=sys.stderr)
        return EXIT_AUTH
    return _report(args, result)


def _check(args: argparse.Namespace) -> None:
    if (args.report is None) == (args.scope is None):
        raise UsageError("give a REPORT, or --scope FILE --since TIME: which runs to cancel")
    if args.scope is None and (args.since or args.until or args.pipeline):
        raise UsageError("--since, --until and --pipeline go with --scope, not with a REPORT")
    if args.scope is not None and not args.since:
        raise UsageError("--scope needs --since: the start of the window of runs to cancel")
    if args.report is not None and not args.report.exists():
        raise ReportError(f"{args.report}: no such report")


def _confirmed(args: argparse.Namespace, count: int) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print(
            f"batchrun: error: not cancelling {count} runs without confirmation: stdin is not a "
            "terminal; pass --yes to cancel them (or --dry-run to only look)",
            file=sys.stderr,
        )
        return False
    answer = input(f"cancel these {count} runs? [y/N] ")
    if answer.strip().casefold() in ("y", "yes"):
        return True
    print("nothing was cancelled", file=sys.stderr)
    return False


async def _targets(
    args: argparse.Namespace, endpoint: str, cloud: Cloud, limits: Timeouts
) -> list[Target]:
    now = utc_now()
    runs: list[Followed] = []
    if args.report is not None:
        runs = to_follow(last_lines(args.report))
        if not runs:
            return []
    else:
        since = parse_option_time(args.since, option="--since")
        until = parse_option_time(args.until, option="--until") if args.until else now
        if since >= until:
            raise UsageError(f"--since {args.since} is not before --until {args.until or '(now)'}")
        scope = load_scope(args.scope, environ=os.environ)
    async with (
        credential_tokens(cloud) as tokens,
        open_client(
            endpoint=endpoint, tokens=tokens, timeouts=limits, connections=args.concurrency
        ) as client,
    ):
        if args.report is not None:
            return await report_targets(client, runs, now=now, retry=retry_settings(args))
        return await find_scope_targets(
            client,
            scope.factories,
            since=since,
            until=until,
            statuses=list(dict.fromkeys(args.status)),
            pipelines=[glob.strip() for glob in args.pipeline if glob.strip()],
            now=now,
            retry=retry_settings(args),
        )


async def _cancel(
    args: argparse.Namespace,
    targets: list[Target],
    endpoint: str,
    cloud: Cloud,
    limits: Timeouts,
) -> CancelResult:
    async with (
        credential_tokens(cloud) as tokens,
        open_client(
            endpoint=endpoint, tokens=tokens, timeouts=limits, connections=args.concurrency
        ) as client,
    ):
        return await cancel_all(
            client,
            targets,
            recursive=args.recursive,
            retry=retry_settings(args),
            concurrency=args.concurrency,
        )


def _report(args: argparse.Namespace, result: CancelResult) -> int:
    print(
        f"cancel requested for {result.requested} runs"
        + (" (recursively)" if args.recursive else "")
        + f"; {result.not_running} had already ended; {len(result.failed)} failed"
    )
    for target, error in result.failed:
        print(f"  failed: {target.describe()}: {error}", file=sys.stderr)
    if args.report is not None and result.requested:
        print(f"follow them to Cancelled with: batchrun watch {args.report}")
    return EXIT_FAILED if result.failed else EXIT_OK
