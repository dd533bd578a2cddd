"""`make demo`: the emulator on a free port, a real `batchrun run --wait` against it, the summary,
and the night as a self-contained HTML page (reports/demo-<stamp>.html).

The runs are followed to their end: a few ExportReports runs fail in their CopyToSftp activity,
and the summary groups them by the activity's error code (its exit code is then 1).

Authentication goes through azure-identity's managed-identity code path, served by the emulator
(the App Service / Container Apps form: IDENTITY_ENDPOINT + IDENTITY_HEADER), and the emulator
accepts only the token it issued there.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from batchrun.emulator import process
from batchrun.report.html import write_html

IDENTITY_HEADER = "batchrun-emulator"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batchrun.demo")
    parser.add_argument("--manifest", type=Path, default=Path("configs/demo.yaml"))
    parser.add_argument("--emulator-config", type=Path, default=Path("configs/demo-emulator.yaml"))
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)

    args.reports.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = args.reports / f"demo-{stamp}.jsonl"
    token = secrets.token_urlsafe(32)
    # `--opt=value`: a random token may start with "-", which argparse would take for an option
    emulator_args = ["--config", str(args.emulator_config), f"--expect-token={token}", "--quiet"]
    emulator_args += ["--identity-header", IDENTITY_HEADER]
    with process.start(emulator_args) as emulator:
        print(f"emulator listening on {emulator.url}", flush=True)
        # only the emulator's managed identity: never a developer's own Azure login
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "MSI_"))}
        used = {
            "IDENTITY_ENDPOINT": f"{emulator.url}/msi/token",
            "IDENTITY_HEADER": IDENTITY_HEADER,
            "BATCHRUN_ENDPOINT": emulator.url,
            "RUN_DATE": datetime.now(UTC).strftime("%Y-%m-%d"),
        }
        env |= used
        options = ["run", str(args.manifest), "--report", str(report), "--log-level", "warning"]
        # the emulator's runs are visible at once: a short reconciliation window will do
        options += ["--reconcile-window", "3"]
        # follow every run to its end: a few ExportReports runs fail, with their activity error
        options += ["--wait", "--poll", "1"]
        # what ran, as it would be typed: the environment and every option
        assignments = " ".join(f"{name}={shlex.quote(value)}" for name, value in used.items())
        print(f"$ {assignments} {shlex.join(['batchrun', *options])}", flush=True)
        command = [sys.executable, "-m", "batchrun", *options]
        code = subprocess.run(command, env=env, check=False).returncode
        stats = emulator.stats()
    created = stats["runs_created"]
    by_status = stats["requests"].get("createRun", {})
    print(
        f"emulator: {created} runs created, {stats['duplicates']} duplicates, "
        f"createRun answers {dict(sorted(by_status.items()))}"
    )
    print(f"batchrun exit code {code}; see the report with: batchrun summary {report}")
    if code == 1:
        # the demo's ExportReports fail in ADF on purpose, to show outcome lines and the summary
        # of failures: that is the demo working, not `make demo` failing
        print("(exit code 1: some runs failed in ADF, as the demo means them to)")
        code = 0
    print(
        "the demo's emulator has stopped; to run batchrun against one by hand: "
        'eval "$(batchrun emulator --background)", then batchrun run configs/demo.yaml '
        "(README: The emulator)"
    )
    if report.exists():
        # the picture of the night, last: what `batchrun summary --format html -o FILE` writes
        page = report.with_suffix(".html")
        write_html([report], page)
        print(f"the night as a page (open it in a browser): {page}")
    return code


if __name__ == "__main__":
    sys.exit(main())
