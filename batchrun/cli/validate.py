"""``batchrun validate MANIFEST...``: check manifests, print the runs per factory; send nothing.

``--online`` also reads, with the night's identity and endpoint, what the runs depend on in
ADF (:mod:`batchrun.run.preflight`): factories, pipelines, their parameters and queues, and the
reference runs of recovery entries. It only reads. ``--format json`` prints one JSON object on
stdout, for CI.

Exit codes: ``0`` every manifest is valid (and, online, ADF agrees); ``1`` online findings, each
at the FILE:LINE:COL of its entry; ``2`` a manifest is invalid (every problem printed, with its
position) or an option is; ``3`` no token, or ARM rejected it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchrun.cli.exits import EXIT_AUTH, EXIT_FAILED, EXIT_OK
from batchrun.cli.options import (
    add_connection_options,
    add_log_options,
    cloud_and_endpoint,
    retry_settings,
    timeouts,
)
from batchrun.errors import ManifestError
from batchrun.manifest.describe import describe
from batchrun.manifest.loader import Manifest, load_manifests

if TYPE_CHECKING:
    import argparse

    from batchrun.arm.cloud import Cloud
    from batchrun.arm.timeouts import Timeouts
    from batchrun.model import RunSpec
    from batchrun.run.preflight import Preflight, PreflightSettings

NAME = "validate"
HELP = "check manifests; --online: against ADF too"
UNDONE = "nothing was sent"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", type=Path, nargs="+", metavar="MANIFEST")
    parser.add_argument(
        "--online",
        action="store_true",
        help="also read from ADF, with the night's identity, that every factory, pipeline, "
        "declared parameter and reference run is there (one GET per distinct pipeline)",
    )
    parser.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="json: one object on stdout, for CI (default: %(default)s)",
    )
    add_connection_options(
        parser,
        concurrency=8,
        concurrency_help="reads in flight at once with --online (paced per subscription)",
        retried="read",
    )
    add_log_options(parser)


def command(args: argparse.Namespace) -> int:
    try:
        manifests = load_manifests(args.manifests, environ=os.environ)
    except ManifestError as exc:
        if args.format == "json":
            _print_json({"valid": False, "errors": [asdict(issue) for issue in exc.issues]})
        raise
    # what was loaded lives until the process ends: frozen, no collection walks it again (the
    # one at exit walked a 100,000-run manifest's objects for ~0.15 s)
    gc.freeze()
    if not args.online:
        if args.format == "json":
            _print_json(_offline(manifests))
        else:
            print(describe(manifests))
        return EXIT_OK
    # here, not at the top: an offline `validate` does not need tenacity and the retry policy
    from batchrun.run.preflight import PreflightSettings

    # every usage error is found before a token is asked for
    cloud, endpoint = cloud_and_endpoint(args)
    settings = PreflightSettings(retry=retry_settings(args), concurrency=args.concurrency)
    runs = [spec for manifest in manifests for spec in manifest.runs]
    result = asyncio.run(_online(runs, settings, endpoint, cloud, timeouts(args)))
    if args.format == "json":
        _print_json(_offline(manifests) | {"online": _online_dict(result)})
    else:
        print(describe(manifests))
        print(_online_text(result))
    if result.auth_error is not None:
        print(
            f"batchrun: ARM rejected the token ({result.auth_error.code}: "
            f"{result.auth_error.message}); fix the identity and validate again",
            file=sys.stderr,
        )
        return EXIT_AUTH
    return EXIT_FAILED if result.findings else EXIT_OK


async def _online(
    runs: list[RunSpec],
    settings: PreflightSettings,
    endpoint: str,
    cloud: Cloud,
    timeouts: Timeouts,
) -> Preflight:
    # here, not at the top: an offline `validate` must not pay for aiohttp and azure-identity
    from batchrun.arm.session import credential_tokens, open_client
    from batchrun.run.preflight import preflight

    async with (
        credential_tokens(cloud) as tokens,
        open_client(
            endpoint=endpoint, tokens=tokens, timeouts=timeouts, connections=settings.concurrency
        ) as client,
    ):
        return await preflight(client, runs, settings=settings)


def _offline(manifests: tuple[Manifest, ...]) -> dict[str, Any]:
    from batchrun.manifest.order import levels, longest_chain

    return {
        "valid": True,
        "runs": sum(len(manifest.runs) for manifest in manifests),
        "manifests": [
            {
                "path": manifest.path,
                "runs": len(manifest.runs),
                "factories": _factories(manifest),
                # runs per dependency level (one level without needs), and a longest chain
                "levels": [len(level) for level in levels(manifest)],
                "longest_chain": longest_chain(manifest),
            }
            for manifest in manifests
        ],
        "warnings": [asdict(warning) for m in manifests for warning in m.warnings],
    }


def _factories(manifest: Manifest) -> list[dict[str, Any]]:
    counts: dict[tuple[str, str, str], int] = {}
    for run in manifest.runs:
        key = (run.subscription, run.resource_group, run.factory)
        counts[key] = counts.get(key, 0) + 1
    return [
        {"subscription": sub, "resource_group": group, "factory": factory, "runs": runs}
        for (sub, group, factory), runs in sorted(counts.items())
    ]


def _online_dict(result: Preflight) -> dict[str, Any]:
    return {
        "clean": not result.findings and result.auth_error is None,
        "findings": [finding.to_dict() for finding in result.findings],
        "factories": result.factories,
        "pipelines": result.pipelines,
        "reference_runs": result.reference_runs,
        "reads": result.reads,
        "auth_error": None if result.auth_error is None else str(result.auth_error),
    }


def _online_text(result: Preflight) -> str:
    checked = (
        f"online: {result.pipelines} pipelines in {result.factories} factories and "
        f"{result.reference_runs} reference runs checked in {result.reads} reads"
    )
    if not result.findings:
        return f"{checked}: ADF agrees with the manifest"
    lines = [str(finding) for finding in result.findings]
    count = len(result.findings)
    return "\n".join([*lines, f"{checked}: {count} finding{'s' if count > 1 else ''}"])


def _print_json(document: dict[str, Any]) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))
