"""``--notify``: the real CLI tells a loopback receiver (apprise's ``json://``) once per batch,
with the failures grouped by code, and never shows the URL's secret; a notifier that is down
changes nothing but a warning."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from tests.helpers.cli import CLI_TIMEOUT_S, SUB_A, StartEmulator, cli_env, start

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from batchrun.emulator.process import EmulatorProcess

pytestmark = pytest.mark.e2e

SECRET = "notify-secret-4f1e9c"
CONFIG = f"""
settings: {{run_queued_ms: 100, run_duration_ms: 300, seed: 1}}
x-pipelines: &pipelines
  LoadOrders: {{}}
  Flaky:
    failure_rate: 1.0
    activities: [{{name: CopyOrders, type: Copy}}]
    failure: {{activity: CopyOrders, code: "2200", failure_type: UserError,
              message: "ErrorCode=UserErrorSourceBlobNotExist, the blob is missing"}}
  Slow: {{duration_ms: 600000}}
subscriptions:
  {SUB_A}:
    resource_groups:
      rg-data:
        factories:
          factory-0: {{pipelines: *pipelines}}
"""


def manifest(**counts: int) -> str:
    runs = [
        f"  - {{id: {pipeline}-{n}, factory: factory-0, pipeline: {pipeline}}}\n"
        for pipeline, count in counts.items()
        for n in range(count)
    ]
    head = f"version: 1\ndefaults: {{subscription: {SUB_A}, resource_group: rg-data}}\nruns:\n"
    return head + "".join(runs)


@dataclass
class Receiver:
    url: str
    got: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    box = Receiver(url="")

    async def hook(request: web.Request) -> web.Response:
        box.got.append(await request.json())
        box.auth.append(request.headers.get("Authorization", ""))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    box.url = f"json://batchrun:{SECRET}@127.0.0.1:{port}/hook"
    yield box
    await runner.cleanup()


@pytest.fixture
def emulator(start_emulator: StartEmulator, tmp_path: Path) -> EmulatorProcess:
    config = tmp_path / "emulator.yaml"
    config.write_text(CONFIG)
    return start(start_emulator, "--config", str(config), "--quiet")


@dataclass
class Done:
    code: int
    out: str


async def batchrun(env: dict[str, str], *args: str) -> Done:
    """The real CLI, awaited: the receiver keeps serving on this loop meanwhile."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "batchrun", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(child.communicate(), CLI_TIMEOUT_S)
    assert child.returncode is not None
    return Done(child.returncode, out.decode())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_failed_batch_notifies_once_with_grouped_failures_and_no_secret(
    tmp_path: Path, emulator: EmulatorProcess, receiver: Receiver
) -> None:
    (tmp_path / "nightly.yaml").write_text(manifest(LoadOrders=3, Flaky=7))
    report = tmp_path / "report.jsonl"
    done = await batchrun(
        cli_env(emulator),
        "run", str(tmp_path / "nightly.yaml"), "--report", str(report),
        "--wait", "--poll", "0.2", "--notify", receiver.url,
    )  # fmt: skip
    assert done.code == 1, done.out
    assert len(receiver.got) == 1
    message = receiver.got[0]
    assert message["title"] == "batchrun nightly.yaml: some runs failed"
    body = message["message"]
    assert "10 runs: 10 succeeded" in body
    assert "in ADF: 3 Succeeded, 7 Failed" in body
    assert "2200: 7 run(s)" in body
    examples = [line for line in body.splitlines() if line.startswith("- Flaky-")]
    assert len(examples) == 5
    assert "(factory-0/Flaky): ErrorCode=UserErrorSourceBlobNotExist" in examples[0]
    assert "https://adf.azure.com/" in examples[0]
    assert f"report: {report}" in body
    # the secret went to the receiver, and nowhere else
    assert base64.b64decode(receiver.auth[0].split()[1]).decode() == f"batchrun:{SECRET}"
    assert SECRET not in done.out
    assert SECRET not in report.read_text()


async def test_a_notifier_that_is_down_only_warns(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    (tmp_path / "m.yaml").write_text(manifest(LoadOrders=2))
    url = f"json://batchrun:{SECRET}@127.0.0.1:{closed_port()}/hook"
    done = await batchrun(
        cli_env(emulator),
        "run", str(tmp_path / "m.yaml"), "--report", str(tmp_path / "r.jsonl"),
        "--notify", url, "--notify-on", "always",
    )  # fmt: skip
    assert done.code == 0, done.out
    assert "the notification to json://… could not be delivered" in done.out
    port = url.rsplit(":", 1)[1].split("/")[0]
    assert SECRET not in done.out and f"127.0.0.1:{port}" not in done.out


async def test_a_manifest_error_still_notifies_from_the_environment(
    tmp_path: Path, receiver: Receiver
) -> None:
    (tmp_path / "broken.yaml").write_text("version: 1\nruns:\n  - factory: f\n    pipelin: P\n")
    # no emulator: the manifest error ends the batch before anything is sent
    drop = ("AZURE_", "MSI_", "IDENTITY_", "BATCHRUN_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["BATCHRUN_NOTIFY"] = receiver.url
    done = await batchrun(env, "run", str(tmp_path / "broken.yaml"))
    assert done.code == 2, done.out
    assert len(receiver.got) == 1
    assert receiver.got[0]["title"] == (
        "batchrun broken.yaml: stopped: usage, manifest or report error"
    )
    assert "pipelin" in receiver.got[0]["message"]
    assert "No report line was written." in receiver.got[0]["message"]
    assert SECRET not in done.out


async def test_success_is_quiet_by_default_and_dry_run_masks(
    tmp_path: Path, emulator: EmulatorProcess, receiver: Receiver
) -> None:
    (tmp_path / "m.yaml").write_text(manifest(LoadOrders=2))
    common = ["run", str(tmp_path / "m.yaml"), "--notify", receiver.url]
    done = await batchrun(cli_env(emulator), *common, "--report", str(tmp_path / "r.jsonl"))
    assert done.code == 0, done.out
    dry = await batchrun(cli_env(emulator), *common, "--dry-run", "--notify-on", "always")
    assert dry.code == 0, dry.out
    assert "would notify (always): json://…" in dry.out
    assert SECRET not in dry.out and SECRET not in done.out
    assert receiver.got == []  # neither a success (--notify-on failure) nor a dry run sends


async def test_a_watch_stopped_by_sigterm_still_notifies_once(
    tmp_path: Path, emulator: EmulatorProcess, receiver: Receiver
) -> None:
    (tmp_path / "m.yaml").write_text(manifest(LoadOrders=1, Slow=2))
    report = tmp_path / "report.jsonl"
    env = cli_env(emulator)
    sent = await batchrun(env, "run", str(tmp_path / "m.yaml"), "--report", str(report))
    assert sent.code == 0, sent.out
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "batchrun", "watch", str(report), "--poll", "0.2",
        "--notify", receiver.url,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        # following: the quick run has its outcome line, the slow ones cannot have one yet
        for _ in range(600):
            if '"outcome"' in report.read_text():
                break
            await asyncio.sleep(0.1)  # a file another process writes: no clock to inject
        child.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(child.communicate(), CLI_TIMEOUT_S)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == 143, out.decode()
    assert len(receiver.got) == 1
    message = receiver.got[0]
    assert message["title"] == (
        "batchrun report.jsonl: interrupted by SIGTERM (batchrun watch goes on)"
    )
    assert "3 runs: 3 succeeded" in message["message"]
    assert "not followed" in message["message"]
    assert SECRET not in out.decode()
