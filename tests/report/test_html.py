"""``summary --format html``: one self-contained page that stays small at 10,000 runs."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from batchrun.cli.main import main
from batchrun.report.html import COLOURS, MAX_ROWS, PER_RUN_MAX, render_html
from batchrun.report.summary import summarize
from batchrun.report.timeline import read_timeline
from tests.helpers.night import write_night

if TYPE_CHECKING:
    from pathlib import Path


def bars(svg: str, colour: str) -> int:
    """The rectangles drawn in ``colour`` (one path per colour, a subpath per rectangle)."""
    path = re.search(rf'<path fill="{colour}" d="([^"]*)"', svg)
    return 0 if path is None else path[1].count("M")


def page(report: Path) -> str:
    return render_html(summarize([report]), read_timeline([report]))


def test_the_page_is_self_contained(tmp_path: Path) -> None:
    html = page(write_night(tmp_path / "r.jsonl", 200))
    assert html.startswith("<!doctype html>")
    assert "<script" not in html.lower()
    # nothing fetched: the only URLs are the monitor links and the SVG namespace
    urls = set(re.findall(r'(?:src|href)="([^"]+)"', html))
    assert urls and all(url.startswith("https://adf.azure.com/") for url in urls)
    assert "<link" not in html and "@import" not in html and "url(" not in html


def test_the_page_shows_counts_failures_and_figures(tmp_path: Path) -> None:
    html = page(write_night(tmp_path / "r.jsonl", 200))
    assert "<b>200</b>runs" in html
    assert "<b>4</b>failed to trigger" in html  # n % 50 == 7
    # failed in ADF, grouped by code, with a monitor link; the message is escaped
    assert "UserErrorSftp" in html and ">2200<" in html
    assert "&lt;refused&gt;" in html and "<refused>" not in html
    assert 'href="https://adf.azure.com/en/monitoring/pipelineruns/guid-' in html
    assert "SubscriptionRequestsThrottled" in html
    figures = html[html.index("Throttling, retries") :]
    assert re.search(r"runs retried[^<]*</td><td class=\"n\">12<", figures)  # n % 17 == 0
    assert re.search(r"reconciliation[^<]*</td><td class=\"n\">1<", figures)
    assert re.search(r"failed throttled</td><td class=\"n\">4<", figures)


def test_a_small_night_draws_a_bar_per_run_with_its_queue(tmp_path: Path) -> None:
    runs = 60
    html = page(write_night(tmp_path / "r.jsonl", runs))
    svg = html[html.index("<svg") : html.index("</svg>")]
    failed_colour, queue_colour = "#c62828", "#cfd8dc"
    # every triggered run has a queue and a run bar; the runs failed in ADF are red
    assert bars(svg, queue_colour) == runs - 2  # two failed to trigger
    assert bars(svg, failed_colour) == 3  # n % 25 == 4 below 60
    assert svg.count("<text") == 6 + 6  # a label per pipeline, six axis ticks


def test_ten_thousand_runs_stay_small_and_readable(tmp_path: Path) -> None:
    runs = 10_000
    assert runs > PER_RUN_MAX
    html = page(write_night(tmp_path / "r.jsonl", runs, pipelines=60, factories=3))
    assert len(html.encode()) < 600_000
    # rows are capped (the rest folded into one), no per-run text
    assert html.count("<text") <= MAX_ROWS + 6
    assert "other pipelines" in html
    assert "run-0" not in html  # no run id is drawn
    assert html.count("<path") <= len(COLOURS) + 1  # one path per colour


def test_summary_html_writes_the_file_and_exits_by_the_runs(tmp_path: Path) -> None:
    report = write_night(tmp_path / "r.jsonl", 30)
    out = tmp_path / "night.html"
    assert main(["summary", str(report), "--format", "html", "-o", str(out)]) == 1
    assert out.read_text().startswith("<!doctype html>")


def test_an_unwritable_output_is_a_usage_error(tmp_path: Path) -> None:
    report = write_night(tmp_path / "r.jsonl", 5)
    assert main(["summary", str(report), "--format", "html", "-o", str(tmp_path / "no/x")]) == 2
