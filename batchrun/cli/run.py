"""``batchrun run MANIFEST``: trigger every run of a manifest, write the report, summarise it.

Exit codes: ``0`` every run triggered (with ``--wait``: and ``Succeeded``); ``1`` at least one
failed (with ``--wait``: to trigger, or in ADF, or timed out), or was not triggered because a
run it needs did not succeed, or ``--only-missing`` could not search ADF (nothing sent); ``2`` a
usage, manifest or report error (nothing sent), another process holds the report, or the report
stopped taking lines (sending stopped); ``3`` no token, or ARM rejected it;
``129``/``130``/``143`` stopped by SIGHUP/SIGINT/SIGTERM (the first signal's).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import re
import shlex
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from batchrun.arm.client import create_run_url
from batchrun.arm.session import credential_tokens
from batchrun.arm.tokenahead import TokenAhead, claim_token_ahead
from batchrun.cli.exits import EXIT_AUTH, EXIT_FAILED, EXIT_OK, EXIT_SIGNAL, EXIT_USAGE
from batchrun.cli.options import (
    add_connection_options,
    add_log_options,
    add_notify_options,
    cloud_and_endpoint,
    positive_float,
    retry_settings,
    timeouts,
)
from batchrun.cli.watch import add_follow_options, finish, follow_settings
from batchrun.errors import ApiError, UsageError
from batchrun.manifest.loader import Manifest, load_manifest
from batchrun.manifest.shard import parse_shard, select
from batchrun.report.render import render
from batchrun.report.summary import summarize
from batchrun.run.reconcile import ReconcileSettings
from batchrun.run.runner import BatchOutcome, BatchSettings, HandedRuns, run_batch
from batchrun.times import utc_now

if TYPE_CHECKING:
    import argparse

    from batchrun.arm.cloud import Cloud
    from batchrun.run.missing import OnlyMissing

NAME = "run"
HELP = "trigger every run of a manifest"
UNDONE = "nothing was sent"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument(
        "--report",
        type=Path,
        help="JSONL report path (default: batchrun-report-<UTC timestamp>.jsonl)",
    )
    parser.add_argument("--resume", action="store_true", help="append to --report, skip succeeded")
    parser.add_argument("--dry-run", action="store_true", help="print the requests, send nothing")
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="run only the K-th of N deterministic slices of the manifest (by run id)",
    )
    add_connection_options(
        parser,
        concurrency=16,
        concurrency_help="requests in flight (the write rate is paced per subscription)",
        retried="run",
    )
    parser.add_argument(
        "--reconcile-window",
        type=positive_float,
        default=ReconcileSettings().window_s,
        metavar="SECONDS",
        help="after a lost response, how long to look for the run in ADF before posting again",
    )
    parser.add_argument(
        "--grace",
        type=positive_float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long in-flight requests may take to finish",
    )
    parser.add_argument(
        "--only-missing",
        action="store_true",
        help="first ask ADF which runs already succeeded (same pipeline and parameters) "
        "and skip those; one paged read per factory",
    )
    parser.add_argument(
        "--since",
        metavar="T",
        help="with --only-missing: count runs that ended since T, an ISO time with a zone "
        "(2026-11-25T22:00Z) or a duration back from now (7d, 36h, 90m); default 7d",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="then follow every triggered run to its end (exit 0 only if all Succeeded)",
    )
    add_follow_options(parser)
    add_notify_options(parser)
    add_log_options(parser)


def command(args: argparse.Namespace) -> int:
    # the child forked at the start (batchrun/__main__.py) signs in for this cloud, if asked
    ahead = claim_token_ahead(args.cloud, wanted=not args.dry_run)
    manifest = load_manifest(args.manifest, environ=os.environ)
    if args.shard:
        shard = parse_shard(args.shard)
        manifest = dataclasses.replace(manifest, runs=tuple(select(manifest.runs, shard)))
        manifest = _needs_in_shard(manifest, args.shard)
    for warning in manifest.warnings:
        print(f"batchrun: warning: {warning}", file=sys.stderr)
    cloud, endpoint = cloud_and_endpoint(args)
    only_missing = only_missing_settings(args, now=utc_now())
    if args.dry_run:
        _print_dry_run(manifest, endpoint)
        if only_missing is not None:
            # a dry run asks no token and reads nothing: it lists every run the manifest has
            print(
                "--only-missing: ADF was not searched in a dry run; every run is listed",
                file=sys.stderr,
            )
        _print_notifiers(args)
        return EXIT_OK
    report = args.report or Path(
        f"batchrun-report-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.jsonl"
    )
    if args.resume and args.report is None:
        raise UsageError(
            "--resume needs --report: the report of the batch to continue (a stopped batch "
            "names it in its last line: rerun with --resume --report PATH)"
        )
    if not report.parent.is_dir():
        # like every usage error: found before a token is asked for or anything is sent
        raise UsageError(
            f"{report}: the directory {report.parent} does not exist; create it, or give "
            "--report a path in an existing directory"
        )
    args.report = report  # the notification at the end names it (cli/main.py)
    settings = BatchSettings(
        report=report,
        endpoint=endpoint,
        resume=args.resume,
        concurrency=args.concurrency,
        retry=retry_settings(args),
        timeouts=timeouts(args),
        grace_s=args.grace,
        reconcile=ReconcileSettings(window_s=args.reconcile_window),
        shard=args.shard,
        only_missing=only_missing,
        wait=args.wait,
        follow=follow_settings(args),
    )
    # the runner takes the runs out as it hands them on: holding the manifest here would keep
    # every run alive for the whole batch (~80 MB of RSS at 100,000 runs)
    handed = HandedRuns(manifest)
    del manifest
    _tune_gc()
    try:
        outcome = asyncio.run(_run(handed, settings, cloud=cloud, ahead=ahead))
    except ApiError as exc:
        from batchrun.run.missing import ONLY_MISSING_FAILED

        if exc.code != ONLY_MISSING_FAILED:
            raise
        print(f"batchrun: error: {exc.message}", file=sys.stderr)
        return EXIT_AUTH if exc.status == 401 else EXIT_FAILED
    # with --wait the summary comes once, when the runs have ended
    code = _finish(outcome, report, table=not args.wait)
    if not args.wait or outcome.stopped:
        return code
    # here: a batch without --wait has no outcome to judge
    from batchrun.run.outcome import last_lines, verdict
    from batchrun.run.watch import WatchOutcome

    # every run was followed along the way (runner.py): following the report again would
    # follow twice what the monitor gave up on
    followed = outcome.followed
    count = followed.unfinished + sum(followed.outcomes.values()) if followed else 0
    return max(
        code, finish(WatchOutcome(count, followed, verdict(last_lines(report)), None), report)
    )


async def _run(
    runs: HandedRuns, settings: BatchSettings, *, cloud: Cloud, ahead: TokenAhead | None
) -> BatchOutcome:
    async with credential_tokens(cloud, ahead=ahead) as tokens:
        return await run_batch(runs, settings, tokens=tokens)


def _tune_gc() -> None:
    """Make the cyclic garbage collector cheap for the batch.

    The loaded runs are long-lived and acyclic, yet every full collection would walk them all;
    ``gc.freeze()`` moves them out of the collector's sight. A batch allocates many short-lived
    objects per run (requests, tasks, tenacity's retry state), so the default first-generation
    threshold (700) collects every few runs: 20,000 cut the collector's time from 0.45 s to
    0.13 s in a 3,000-run batch (benchmarks/README.md). The older generations keep their
    defaults (10, 10): tenacity's cycles that outlive a young collection are freed only by an
    older one, and rarer ones (50, 100) held 14 MB more at 10,000 runs (bench memory --quick).

    No collection before the freeze: it found 29 unreachable objects (import-time cycles; the
    manifest is read with the collector paused and leaves none) and took 35 ms at 3,000 runs,
    84 ms at 100,000, walking every object the freeze is about to hide.
    """
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


_SINCE_AGO = re.compile(r"(?P<number>\d+)\s*(?P<unit>[dhm])", re.IGNORECASE)
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def only_missing_settings(args: argparse.Namespace, *, now: datetime) -> OnlyMissing | None:
    if not args.only_missing:
        if args.since is not None:
            raise UsageError("--since needs --only-missing: it says how far back to look")
        return None
    # here: a batch without --only-missing does not search
    from batchrun.run.missing import DEFAULT_SINCE, OnlyMissing

    since = now - DEFAULT_SINCE if args.since is None else since_time(args.since, now=now)
    if since >= now:
        raise UsageError(f"--since {args.since} is not in the past")
    return OnlyMissing(since=since)


def since_time(text: str, *, now: datetime) -> datetime:
    """``--since``: a duration back from ``now`` (``7d``, ``36h``, ``90m``), or an ISO 8601
    time with a zone."""
    ago = _SINCE_AGO.fullmatch(text.strip())
    if ago is not None:
        unit = _UNITS[ago["unit"].lower()]
        try:
            return now - timedelta(**{unit: int(ago["number"])})
        except OverflowError:
            raise UsageError(f"--since {text!r} reaches back before the year 1") from None
    if text.strip()[:1].isdigit() and "-" not in text:
        raise UsageError(
            f"--since {text!r} is not a duration: give a number and a unit, d, h or m "
            "(7d, 36h, 90m), or an ISO time with a zone (2026-11-25T22:00Z)"
        )
    # here, not at the top: `recover`'s search and output are not on a batch's way
    from batchrun.cli.recover import parse_option_time

    return parse_option_time(text, option="--since")


def _finish(outcome: BatchOutcome, report: Path, *, table: bool = True) -> int:
    progress = outcome.progress
    if outcome.only_missing is not None:
        search = outcome.only_missing
        print(
            f"--only-missing: {len(search.found)} of {search.searched} runs had already "
            f"succeeded in ADF and were skipped ({search.reads} reads, "
            f"{search.factories} factories)",
            file=sys.stderr,
        )
    print(progress.summary())
    if outcome.already_succeeded:
        print(f"  ({outcome.already_succeeded} runs had already succeeded in the resumed report)")
    if table and report.exists():
        # the same view as `batchrun summary REPORT`, of the whole report
        print()
        # tallied as it was written, where the batch wrote all of it
        tally = outcome.tally
        summary = tally.summary([report]) if tally is not None else summarize([report])
        print(render(summary, "table"))
    # with --wait and no stop, the night's summary (and the path) comes once the runs have ended
    if table or outcome.stopped:
        print(f"report: {report}")
    # the report's own path: a default one is new each time, so `--resume` alone cannot find it
    rerun = f"rerun with --resume --report {shlex.quote(str(report))}"
    left = progress.total - progress.done
    if outcome.write_failure is not None:
        print(
            f"batchrun: error: {outcome.write_failure}; stopped sending with {left} runs not "
            f"sent and {outcome.unwritten} ended without a line (their intents are in the "
            "journal: --resume looks for them in ADF before sending anything); free some space "
            f"or lift the limit, then {rerun}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if outcome.signal is not None:
        followed = outcome.followed
        if left == 0 and followed is not None:
            # nothing left to trigger: only the following was cut short, and watch goes on with it
            print(
                f"interrupted by {outcome.signal.name}: every run was triggered, "
                f"{followed.unfinished} still followed; go on with: batchrun watch "
                f"{shlex.quote(str(report))}"
            )
        else:
            print(f"interrupted by {outcome.signal.name}: {left} runs not triggered; {rerun}")
        return EXIT_SIGNAL[outcome.signal]
    if outcome.auth_error is not None:
        print(
            f"batchrun: ARM rejected the token ({outcome.auth_error.code}: "
            f"{outcome.auth_error.message}); stopped with {left} runs not sent; "
            f"fix the identity and {rerun}",
            file=sys.stderr,
        )
        return EXIT_AUTH
    if outcome.undecided:
        print(
            f"{outcome.undecided} runs not triggered: the runs they need were not seen to end; "
            f"{rerun}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_FAILED if progress.failed or progress.blocked else EXIT_OK


def _needs_in_shard(manifest: Manifest, shard: str) -> Manifest:
    """The manifest's needs, for the runs of the shard; a need in another shard is an error
    (this shard could never see it end)."""
    if not manifest.needs:
        return manifest
    ids = {spec.id for spec in manifest.runs}
    for spec in manifest.runs:
        for need in manifest.needs.get(spec.id, ()):
            if need not in ids:
                raise UsageError(
                    f"{spec.source or manifest.path}: {spec.id} needs {need}, which --shard "
                    f"{shard} leaves to another slice; a shard must hold every run its runs "
                    "need: run this manifest without --shard"
                )
    needs = {run_id: wanted for run_id, wanted in manifest.needs.items() if run_id in ids}
    return dataclasses.replace(manifest, needs=needs)


def _print_dry_run(manifest: Manifest, endpoint: str) -> None:
    from batchrun.manifest.order import in_order, levels

    # in an order the runs can be triggered in: each after every run it needs
    for spec in in_order(manifest):
        body = json.dumps(spec.parameters, separators=(",", ":"), ensure_ascii=False)
        print(f"{spec.id}\tPOST\t{create_run_url(endpoint, spec)}\t{body}")
    depth = f" in {len(levels(manifest))} dependency levels" if manifest.needs else ""
    print(f"{len(manifest.runs)} runs{depth}; nothing was sent", file=sys.stderr)


def _print_notifiers(args: argparse.Namespace) -> None:
    from batchrun.report.notify import masked, notify_urls

    urls = notify_urls(args.notify, os.environ)
    if urls:
        names = ", ".join(masked(url) for url in urls)
        print(f"would notify ({args.notify_on}): {names}", file=sys.stderr)
