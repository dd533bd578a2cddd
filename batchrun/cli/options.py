"""Command-line options that several sub-commands share, declared once."""

from __future__ import annotations

import argparse
import math
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batchrun.arm.cloud import Cloud
    from batchrun.arm.retry import RetrySettings
    from batchrun.arm.timeouts import Timeouts


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each option's default, where there is one worth showing (not an unset
    option's None, a flag's False, or a default the help already names); epilogs keep their
    lines."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return action.help
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    # float() takes "nan" and "inf": a nan window never ends, an inf timeout crashes aiohttp
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(
            f"must be a finite number greater than 0 (such as 30 or 2.5), got {text!r}"
        )
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return value


def add_connection_options(
    parser: argparse.ArgumentParser, *, concurrency: int, concurrency_help: str, retried: str
) -> None:
    """Cloud, endpoint, concurrency, retries and timeouts."""
    # here, not at the top: `validate` and `summary` share this module and need no aiohttp
    from batchrun.arm.cloud import CLOUDS, DEFAULT_CLOUD
    from batchrun.arm.retry import RetrySettings
    from batchrun.arm.timeouts import Timeouts

    parser.add_argument(
        "--concurrency", type=positive_int, default=concurrency, help=concurrency_help
    )
    parser.add_argument(
        "--cloud",
        default=DEFAULT_CLOUD,
        metavar="NAME",
        help=f"one of {', '.join(sorted(CLOUDS))}; any case; AzureCloud = AzurePublicCloud",
    )
    parser.add_argument(
        "--endpoint",
        help="management endpoint URL override (default: $BATCHRUN_ENDPOINT, else the cloud's)",
    )
    parser.add_argument(
        "--max-attempts",
        type=positive_int,
        default=RetrySettings().max_attempts,
        help=f"attempts per {retried} for transient failures",
    )
    parser.add_argument(
        "--max-retry-time",
        type=positive_float,
        default=RetrySettings().max_seconds,
        metavar="SECONDS",
        help=f"give up retrying a {retried} after this long",
    )
    parser.add_argument(
        "--connect-timeout",
        type=positive_float,
        default=Timeouts().connect_s,
        metavar="SECONDS",
        help="per connection attempt",
    )
    parser.add_argument(
        "--read-timeout",
        type=positive_float,
        default=Timeouts().read_s,
        metavar="SECONDS",
        help="per response: longer, and the answer counts as lost",
    )
    parser.add_argument(
        "--allow-endpoint",
        action="append",
        metavar="HOST",
        help="let --endpoint point at HOST, not the cloud's management host: the token goes "
        "there (repeatable; also $BATCHRUN_ALLOW_ENDPOINT, comma-separated)",
    )


def cloud_and_endpoint(args: argparse.Namespace) -> tuple[Cloud, str]:
    """The cloud named by ``--cloud`` and the endpoint to send to (``--endpoint``, else
    ``$BATCHRUN_ENDPOINT``, else the cloud's), checked against the hosts the token may go to."""
    from batchrun.arm.cloud import allowed_hosts, get_cloud, resolve_endpoint

    cloud = get_cloud(args.cloud)
    allowed = allowed_hosts(args.allow_endpoint, os.environ)
    return cloud, resolve_endpoint(cloud, endpoint_override(args), allowed=allowed)


def endpoint_override(args: argparse.Namespace) -> str | None:
    override: str | None = args.endpoint or os.environ.get("BATCHRUN_ENDPOINT")
    return override


def retry_settings(args: argparse.Namespace) -> RetrySettings:
    from batchrun.arm.retry import RetrySettings

    return RetrySettings(max_attempts=args.max_attempts, max_seconds=args.max_retry_time)


def timeouts(args: argparse.Namespace) -> Timeouts:
    from batchrun.arm.timeouts import Timeouts

    return Timeouts(connect_s=args.connect_timeout, read_s=args.read_timeout)


def add_log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=["console", "json"],
        default=None,
        help="log lines on stderr (default: console on a TTY, else json)",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,  # INFO as well as info: the spelling logging itself prints
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="any case; debug shows every retry",
    )


def add_notify_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--notify",
        action="append",
        metavar="URL",
        help="when the batch ends, send one message here (an apprise URL: msteams://, slack://, "
        "mailto://, json://, ...; repeatable; also $BATCHRUN_NOTIFY, space or comma "
        "separated); the URL is a secret: never printed or written",
    )
    parser.add_argument(
        "--notify-on",
        choices=["failure", "always"],
        default="failure",
        help="failure: only when the exit code is not 0",
    )
