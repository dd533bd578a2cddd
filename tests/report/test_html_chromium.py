"""The demo's night, as ``make demo`` writes it, rendered by a real browser (Debian's headless
``chromium``): it loads without a console error and draws a screenshot worth looking at."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import CLI_TIMEOUT_S
from tests.helpers.paths import ROOT

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SIZE = (1400, 1000)


def screenshot(page: Path, png: Path, profile: Path) -> str:
    """Render ``page`` into ``png``; chromium's own log (stderr), where console errors show."""
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={png}",
            f"--window-size={SIZE[0]},{SIZE[1]}", "--enable-logging=stderr", "--v=0",
            page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stderr


def png_size(png: Path) -> tuple[int, int]:
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR comes first
    return width, height


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (apt-get install chromium)")
def test_the_demo_page_renders_in_chromium(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "batchrun.demo", "--reports", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # the demo ends with the page's path
    last = done.stdout.splitlines()[-1]
    page = Path(last.rsplit(": ", 1)[1])
    assert page.suffix == ".html" and page.parent == tmp_path and page.exists()
    html = page.read_text()
    assert "<script" not in html
    png = tmp_path / "night.png"
    log = screenshot(page, png, tmp_path / "profile")
    console = [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    assert png_size(png) == SIZE
    # a blank or error page compresses to a few KB; the timeline's bars do not
    assert png.stat().st_size > 20_000
