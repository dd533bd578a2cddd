"""`batchrun validate` imports neither aiohttp, the Azure SDK nor importlib.metadata: a big
manifest's check is fast. `batchrun run` imports the following of runs (``--wait``, ``needs``)
and ``--only-missing``'s search only when it is asked for: a batch starts sooner."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.helpers.cli import FAST, SUB_A, StartEmulator, cli_env, start_configured

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e

CHECK = """
import sys
from batchrun.cli.main import main
code = main(["validate", sys.argv[1]])
# the light parts of arm (clouds, timeouts, pacing) declare validate --online's options
heavy = sorted(
    m for m in sys.modules
    if m.split(".")[0] in ("aiohttp", "azure")
    or m in ("batchrun.arm.client", "batchrun.arm.auth", "batchrun.arm.transport",
             "batchrun.arm.session", "importlib.metadata")
)
print(code, " ".join(heavy))
"""


def test_validate_imports_no_http_client_and_no_azure_sdk(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "version: 1\nruns:\n  - {subscription: s, resource_group: rg, factory: fac, pipeline: p}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", CHECK, str(manifest)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    code, _, heavy = done.stdout.strip().splitlines()[-1].partition(" ")
    assert code == "0"
    assert heavy == ""


LOG_CHECK = """
import sys
import batchrun.log
import structlog.dev
# rich, where installed, is hidden from structlog only, not from the process
print("rich" in sys.modules, structlog.dev.rich is None)
"""


def test_logging_does_not_import_rich() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOG_CHECK], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]


VERSION_CHECK = """
import sys
import batchrun
from batchrun.cli.main import main
print(batchrun.__version__, "importlib.metadata" in sys.modules)
main(["--version"])
"""


def test_the_version_is_the_installed_one_and_costs_no_metadata_lookup() -> None:
    from importlib.metadata import version

    done = subprocess.run(
        [sys.executable, "-c", VERSION_CHECK], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # the built distribution's version is read from batchrun/__init__.py: one source
    installed = version("batchrun")
    assert done.stdout == f"{installed} False\nbatchrun {installed}\n"


RUN_CHECK = """
import sys
from batchrun.cli.main import main
manifest, report, *options = sys.argv[1:]
code = main(["run", manifest, "--report", report, "--log-format", "json", *options])
print(code, " ".join(sorted(m for m in sys.modules if m in %r)))
"""
# what only --wait, watch, needs and --only-missing use
FOLLOWING = (
    "batchrun.report.outcome",
    "batchrun.run.cancel",
    "batchrun.run.dependencies",
    "batchrun.run.missing",
    "batchrun.run.monitor",
    "batchrun.run.outcome",
    "batchrun.run.watch",
)
RUN_CONFIG = f"""
settings: {{run_queued_ms: 50, run_duration_ms: 200, seed: 1}}
subscriptions:
  {SUB_A}:
    resource_groups:
      rg-data:
        factories:
          factory-0: {{pipelines: {{LoadOrders: {{}}}}}}
"""
RUN_MANIFEST = f"""version: 1
defaults: {{subscription: {SUB_A}, resource_group: rg-data, factory: factory-0}}
runs:
  - {{id: a, pipeline: LoadOrders}}
  - {{id: b, pipeline: LoadOrders}}
"""


@pytest.mark.parametrize(
    ("options", "imported"),
    [
        ((), set()),
        # the check can see them: a batch that follows its runs imports the following
        (("--wait", *FAST), set(FOLLOWING) - {"batchrun.run.missing"}),
    ],
    ids=["plain", "wait"],
)
def test_a_plain_run_imports_no_following_and_no_search(
    tmp_path: Path, start_emulator: StartEmulator, options: tuple[str, ...], imported: set[str]
) -> None:
    emulator = start_configured(start_emulator, tmp_path, RUN_CONFIG)
    manifest = tmp_path / "m.yaml"
    manifest.write_text(RUN_MANIFEST)
    done = subprocess.run(
        [sys.executable, "-c", RUN_CHECK % (FOLLOWING,), str(manifest), str(tmp_path / "r.jsonl"),
         *options],
        capture_output=True, text=True, timeout=60, check=False, env=cli_env(emulator),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    code, _, found = done.stdout.strip().splitlines()[-1].partition(" ")
    assert code == "0"
    assert set(found.split()) == imported
