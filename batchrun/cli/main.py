"""The command line: parse, build settings, configure logging, run, map errors to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from batchrun import __version__
from batchrun.arm.auth import CredentialTokens, default_credential
from batchrun.arm.client import create_run_url
from batchrun.arm.cloud import allowed_hosts, get_cloud, resolve_endpoint
from batchrun.cli.options import (
    add_connection_options,
    add_log_options,
    endpoint_override,
    positive_float,
    retry_settings,
    timeouts,
)
from batchrun.cli.recover import add_recover_arguments, recover_command
from batchrun.errors import AuthError, ManifestError, ReportError, UsageError
from batchrun.log import configure
from batchrun.manifest.loader import Manifest, describe, load_manifest, load_manifests
from batchrun.manifest.shard import parse_shard, select
from batchrun.report.summary import FORMATS, render, summarize
from batchrun.run.reconcile import ReconcileSettings
from batchrun.run.runner import BatchOutcome, RunSettings, run_batch

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchrun",
        description="Trigger many Azure Data Factory pipeline runs from one YAML manifest.",
    )
    parser.add_argument("--version", action="version", version=f"batchrun {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="trigger every run of a manifest")
    run.add_argument("manifest", type=Path, metavar="MANIFEST")
    run.add_argument(
        "--report",
        type=Path,
        help="JSONL report path (default: batchrun-report-<UTC timestamp>.jsonl)",
    )
    run.add_argument("--resume", action="store_true", help="append to --report, skip succeeded")
    run.add_argument("--dry-run", action="store_true", help="print the requests, send nothing")
    run.add_argument(
        "--shard",
        metavar="K/N",
        help="run only the K-th of N deterministic slices of the manifest (by run id)",
    )
    add_connection_options(
        run,
        concurrency=16,
        concurrency_help="requests in flight (the write rate is paced per subscription)",
        retried="run",
    )
    run.add_argument(
        "--reconcile-window",
        type=positive_float,
        default=ReconcileSettings().window_s,
        metavar="SECONDS",
        help="after a lost response, how long to look for the run in ADF before posting again",
    )
    run.add_argument(
        "--grace",
        type=positive_float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long in-flight requests may take to finish",
    )
    add_log_options(run)

    validate = commands.add_parser("validate", help="check manifests; send nothing")
    validate.add_argument("manifests", type=Path, nargs="+", metavar="MANIFEST")
    add_log_options(validate)

    summary = commands.add_parser("summary", help="summarise one or more reports")
    summary.add_argument("reports", type=Path, nargs="+", metavar="REPORT")
    summary.add_argument("--format", choices=FORMATS, default="table")
    add_log_options(summary)

    recover = commands.add_parser("recover", help="find failed runs; write a recovery manifest")
    add_recover_arguments(recover)

    emulator = commands.add_parser("emulator", help="serve the local ADF emulator")
    from batchrun.emulator.server import add_arguments as add_emulator_arguments

    add_emulator_arguments(emulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "emulator":
        from batchrun.emulator.server import run as run_emulator

        return run_emulator(args)
    configure(fmt=args.log_format, level=args.log_level)
    try:
        if args.command == "recover":
            return recover_command(args)
        if args.command == "validate":
            return _validate(args)
        if args.command == "summary":
            return _summary(args)
        return _run(args)
    except (ManifestError, UsageError, ReportError) as exc:
        print(
            f"batchrun: error: {exc}" if not isinstance(exc, ManifestError) else exc,
            file=sys.stderr,
        )
        if isinstance(exc, ManifestError):
            print(f"batchrun: {len(exc.issues)} problem(s); nothing was sent", file=sys.stderr)
        return EXIT_USAGE
    except AuthError as exc:
        print(f"batchrun: authentication failed; nothing was sent:\n{exc}", file=sys.stderr)
        return EXIT_AUTH
    except KeyboardInterrupt:
        return EXIT_SIGNAL[signal.SIGINT]


def _validate(args: argparse.Namespace) -> int:
    manifests = load_manifests(args.manifests, environ=os.environ)
    print(describe(manifests))
    return EXIT_OK


def _summary(args: argparse.Namespace) -> int:
    summary = summarize(args.reports)
    print(render(summary, args.format))
    return EXIT_RUN_FAILED if summary.failed else EXIT_OK


def _run(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest, environ=os.environ)
    if args.shard:
        shard = parse_shard(args.shard)
        manifest = dataclasses.replace(manifest, runs=tuple(select(manifest.runs, shard)))
    for warning in manifest.warnings:
        print(f"batchrun: warning: {warning}", file=sys.stderr)
    cloud = get_cloud(args.cloud)
    endpoint = resolve_endpoint(
        cloud, endpoint_override(args), allowed=allowed_hosts(args.allow_endpoint, os.environ)
    )
    if args.dry_run:
        _print_dry_run(manifest, endpoint)
        return EXIT_OK
    report = args.report or Path(
        f"batchrun-report-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.jsonl"
    )
    if args.resume and args.report is None:
        raise UsageError("--resume needs --report: the report of the run to continue")
    settings = RunSettings(
        report=report,
        endpoint=endpoint,
        resume=args.resume,
        concurrency=args.concurrency,
        retry=retry_settings(args),
        timeouts=timeouts(args),
        grace_s=args.grace,
        reconcile=ReconcileSettings(window_s=args.reconcile_window),
        shard=args.shard,
    )
    outcome = asyncio.run(_run_async(manifest, settings, scope=cloud.scope))
    # a big manifest's runs are not needed for the summary: let it reuse their memory
    del manifest
    return _finish(outcome, report)


async def _run_async(manifest: Manifest, settings: RunSettings, *, scope: str) -> BatchOutcome:
    tokens = CredentialTokens(default_credential(), scope)
    try:
        return await run_batch(manifest, settings, tokens=tokens)
    finally:
        await tokens.close()


def _finish(outcome: BatchOutcome, report: Path) -> int:
    progress = outcome.progress
    print(progress.summary())
    if outcome.already_succeeded:
        print(f"  ({outcome.already_succeeded} runs had already succeeded in the resumed report)")
    if report.exists():
        # the same view as `batchrun summary REPORT`, of the whole report
        print()
        print(render(summarize([report]), "table"))
    print(f"report: {report}")
    if outcome.signal is not None:
        left = progress.total - progress.done
        print(
            f"interrupted by {outcome.signal.name}: {left} runs not triggered; rerun with --resume"
        )
        return EXIT_SIGNAL[outcome.signal]
    if outcome.auth_error is not None:
        left = progress.total - progress.done
        print(
            f"batchrun: ARM rejected the token ({outcome.auth_error.code}: "
            f"{outcome.auth_error.message}); stopped with {left} runs not sent; "
            "fix the identity and rerun with --resume",
            file=sys.stderr,
        )
        return EXIT_AUTH
    return EXIT_RUN_FAILED if progress.failed else EXIT_OK


def _print_dry_run(manifest: Manifest, endpoint: str) -> None:
    for spec in manifest.runs:
        body = json.dumps(spec.parameters, separators=(",", ":"), ensure_ascii=False)
        print(f"{spec.id}\tPOST\t{create_run_url(endpoint, spec)}\t{body}")
    print(f"{len(manifest.runs)} runs; nothing was sent", file=sys.stderr)
