"""Command line and serving: ``add_arguments`` + ``run`` (shared by ``batchrun emulator``).

``run`` blocks until SIGINT/SIGTERM and returns 0; 2 for a bad option, config file or TLS
certificate, 1 when the address cannot be bound. When ready it prints ``listening on
http://HOST:PORT`` on stdout (``https://`` with ``--tls-cert`` and ``--tls-key``). Without
``--config`` or ``--accept-any`` it serves the demo topology, and says so first.

``--background`` starts it as a detached process instead (on a free port unless ``--port``),
prints the ``export …`` lines a shell needs to reach it (``eval "$(batchrun emulator
--background)"``) and returns 0 once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from batchrun.emulator.app import build_app
from batchrun.emulator.config import (
    SETTING_FIELDS,
    ConfigError,
    ConfigFile,
    Settings,
    Topology,
    build_settings,
    demo_topology,
    describe_topology,
    load_config,
    setting_type,
)
from batchrun.emulator.history import PastRun, load_history

if TYPE_CHECKING:
    from collections.abc import Sequence

# option groups in --help, by the first setting of each
_GROUPS = {
    "host": "server",
    "expect_token": "authentication",
    "write_burst": "ARM throttling",
    "run_queued_ms": "pipeline runs",
    "single_run_group_filter": "ADF/ARM answers (as in Azure by default; --no-…: older habits)",
    "seed": "fault injection (createRun only unless --faults-on-reads)",
}
_METAVARS = {
    "host": "HOST",
    "history": "FILE",
    "expect_token": "TOKEN",
    "identity_header": "SECRET",
    "tls_cert": "FILE",
    "tls_key": "FILE",
}
_PROBABILITIES = {
    "run_failure_rate",
    "fail_500",
    "fail_503",
    "fail_502_html",
    "fail_500_after_create",
    "drop_after_create",
    "garbled_after_create",
    "stall_after_create",
}
SHUTDOWN_GRACE_S = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="YAML topology (subscriptions → resource_groups → factories → pipelines) and "
        "default settings; flags override it (default: the demo topology of configs/demo.yaml)",
    )
    parser.add_argument(
        "--background",
        action="store_true",
        help='start detached (on a free port unless --port), print the "export ..." lines for '
        'the shell, and return: eval "$(batchrun emulator --background)"; stop it with '
        'kill "$BATCHRUN_EMULATOR_PID"',
    )
    group = parser.add_argument_group("server")
    for name, spec in SETTING_FIELDS.items():
        if name in _GROUPS:
            group = parser.add_argument_group(_GROUPS[name])
        kind = setting_type(name)
        flag = "--" + name.replace("_", "-")
        shown = spec.default is not None and kind is not bool
        help_text = spec.metadata["help"] + (f" (default: {spec.default})" if shown else "")
        if kind is bool:
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            metavar = _METAVARS.get(name) or (
                "P" if name in _PROBABILITIES else kind.__name__.upper()
            )
            group.add_argument(flag, type=kind, default=None, metavar=metavar, help=help_text)


def load(args: argparse.Namespace) -> tuple[Settings, Topology, list[PastRun]]:
    """Settings (defaults < config file < flags), the topology and the history to seed."""
    config_path: Path | None = getattr(args, "config", None)
    config = load_config(config_path) if config_path is not None else ConfigFile(Topology(), {})
    flags = {
        name: getattr(args, name)
        for name in SETTING_FIELDS
        if getattr(args, name, None) is not None
    }
    settings = build_settings(config.settings, flags)
    topology = Topology(config.topology.factories, accept_any=settings.accept_any)
    if config_path is None and not topology.accept_any:
        topology = demo_topology()
    history = load_history(Path(settings.history), topology) if settings.history else []
    return settings, topology, history


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context when ``tls_cert`` and ``tls_key`` are set; None serves http."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the TLS certificate {settings.tls_cert!r} with key "
            f"{settings.tls_key!r}: {exc}; both must be PEM files, the key matching the "
            "certificate"
        ) from exc
    return context


def run(args: argparse.Namespace) -> int:
    try:
        settings, topology, history = load(args)
        tls = tls_context(settings)
    except ConfigError as exc:
        print(f"batchrun emulator: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "background", False):
        return _background(args, settings)
    if getattr(args, "config", None) is None and not settings.accept_any:
        print(
            f"batchrun emulator: no --config: serving the demo topology, "
            f"{describe_topology(topology)} (--config FILE for your own, --accept-any for any "
            "name)",
            file=sys.stderr,
            flush=True,
        )
    try:
        asyncio.run(serve(settings, topology, history=history, tls=tls))
    except OSError as exc:
        print(
            f"batchrun emulator: cannot listen on {settings.host}:{settings.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    return 0


def _background(args: argparse.Namespace, settings: Settings) -> int:
    # imported here: only this path starts a process
    from batchrun.emulator.process import detach

    argv = _argv(args)
    if args.port is None:
        argv += ["--port", "0"]
    try:
        started = detach(argv)
    except (OSError, RuntimeError, TimeoutError) as exc:
        print(f"batchrun emulator: could not start in the background: {exc}", file=sys.stderr)
        return 1
    exports = {
        "BATCHRUN_ENDPOINT": started.url,
        "IDENTITY_ENDPOINT": f"{started.url}/msi/token",
        "IDENTITY_HEADER": settings.identity_header,
        "BATCHRUN_EMULATOR_PID": str(started.pid),
        "BATCHRUN_EMULATOR_LOG": str(started.log_path),
    }
    for name, value in exports.items():
        print(f"export {name}={shlex.quote(value)}")
    print(f'# the emulator listens on {started.url}; stop it with: kill "$BATCHRUN_EMULATOR_PID"')
    return 0


def _argv(args: argparse.Namespace) -> list[str]:
    """The command line that gives a child process the same settings as ``args``."""
    argv: list[str] = []
    if getattr(args, "config", None) is not None:
        argv += ["--config", str(args.config)]
    for name in SETTING_FIELDS:
        value = getattr(args, name, None)
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def _url(address: Sequence[object], *, scheme: str = "http") -> str:
    host, port = str(address[0]), address[1]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


async def serve(
    settings: Settings,
    topology: Topology,
    *,
    history: Sequence[PastRun] = (),
    tls: ssl.SSLContext | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM (https with ``tls``); in-flight requests get a short grace
    period."""
    app = build_app(settings, topology, history=history, log=sys.stderr)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S
    )
    await runner.setup()
    try:
        await web.TCPSite(
            runner, settings.host, settings.port, backlog=1024, ssl_context=tls
        ).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            scheme = "http" if tls is None else "https"
            print(f"listening on {_url(runner.addresses[0], scheme=scheme)}", flush=True)
            await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
    finally:
        await runner.cleanup()
