"""A picture of the night: ``batchrun summary REPORT... --format html``, one self-contained page.

Inline CSS and SVG only: no script, no font, no image fetched from anywhere, so the page opens
from a mail attachment or an artifact store as it is, and a strict CSP cannot break it.

The timeline has one row per factory/pipeline. Up to :data:`PER_RUN_MAX` runs each get a bar
(queue from trigger to run start, then the run, coloured by outcome); beyond that each row is
aggregated into :data:`BINS` time bins (a stacked count of triggers by outcome, and a band of how
many runs were running), so 10,000 runs draw a few thousand rects and no per-run text.
"""

from __future__ import annotations

from collections import Counter
from html import escape
from typing import TYPE_CHECKING

from batchrun.report.summary import Summary, summarize
from batchrun.report.timeline import KINDS, RunSpan, Timeline, read_timeline
from batchrun.text import shorten
from batchrun.times import utc_iso

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = ["BINS", "MAX_ROWS", "PER_RUN_MAX", "render_html", "write_html"]

PER_RUN_MAX = 600
BINS = 120
# rows beyond this are folded into one "other pipelines" row: labels stay readable
MAX_ROWS = 40
FAILURES_SHOWN = 25
_LANES = 10
_LABEL_W, _PLOT_W, _PAD = 250, 1000, 10
COLOURS = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "cancelled": "#8e24aa",
    "timedout": "#ef6c00",
    "not-triggered": "#4e342e",
    "not-followed": "#78909c",
}
_QUEUE = "#cfd8dc"
_RUNNING = "#5c6bc0"
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1b1b;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.meta{color:#555}.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:22px}table{border-collapse:collapse}
td,th{border-bottom:1px solid #eee;padding:4px 10px;text-align:left;vertical-align:top}
td.n{text-align:right}.key{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;
vertical-align:-1px}svg text{font:12px system-ui,sans-serif;fill:#333}
"""


def write_html(paths: Sequence[Path], output: Path) -> Summary:
    """Write the page for ``paths`` to ``output``; the summary it drew (for the exit code)."""
    summary = summarize(paths)
    output.write_text(render_html(summary, read_timeline(paths)), encoding="utf-8")
    return summary


def render_html(summary: Summary, timeline: Timeline) -> str:
    verdict = "some runs failed" if summary.failed else "every run succeeded"
    title = f"batchrun: {summary.runs} runs, {verdict}"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">{escape(", ".join(summary.reports))}{_when(summary)}</p>',
        _cards(summary),
        "<h2>Timeline</h2>",
        _legend(),
        _svg(timeline),
        _figures(summary),
        _failures(summary),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def _when(summary: Summary) -> str:
    if summary.first_started is None or summary.last_finished is None:
        return ""
    first = utc_iso(summary.first_started, timespec="seconds")
    last = utc_iso(summary.last_finished, timespec="seconds")
    return f" &middot; {first} &rarr; {last} ({summary.span_s or 0:.0f}s)"


def _cards(summary: Summary) -> str:
    counts: list[tuple[str, int]] = [("runs", summary.runs)]
    # the trigger's status, named apart from ADF's outcomes ("succeeded" vs "Succeeded")
    names = {"succeeded": "triggered", "failed": "failed to trigger"}
    counts += [(names.get(status, status), n) for status, n in summary.statuses.items() if n]
    if summary.blocked:
        counts.append(("skipped: a need did not succeed", summary.blocked))
    if summary.outcomes is not None:
        counts += [(name, n) for name, n in summary.outcomes.outcomes.items() if n]
    cards = "".join(f'<div class="card"><b>{n}</b>{escape(name)}</div>' for name, n in counts)
    return f'<div class="cards">{cards}</div>'


def _legend() -> str:
    keys = [("queued", _QUEUE), *((kind, COLOURS[kind]) for kind in KINDS)]
    keys.append(("running (band under a row of many runs)", _RUNNING))
    spans = "".join(
        f'<span class="key" style="background:{colour}"></span>{escape(name)}'
        for name, colour in keys
    )
    return f"<p>{spans}</p>"


def _rows(timeline: Timeline) -> dict[tuple[str, str], list[RunSpan]]:
    by_row: dict[tuple[str, str], list[RunSpan]] = {}
    for run in timeline.runs:
        by_row.setdefault(run.row, []).append(run)
    ordered = sorted(by_row.items(), key=lambda item: (-len(item[1]), item[0]))
    if len(ordered) <= MAX_ROWS:
        return dict(sorted(ordered))
    kept = dict(sorted(ordered[: MAX_ROWS - 1]))
    rest = ordered[MAX_ROWS - 1 :]
    kept[("", f"{len(rest)} other pipelines")] = [run for _, runs in rest for run in runs]
    return kept


def _svg(timeline: Timeline) -> str:
    if not timeline.runs:
        return "<p>No run in the report(s).</p>"
    rows = _rows(timeline)
    per_run = len(timeline.runs) <= PER_RUN_MAX
    scale = _PLOT_W / timeline.span_s
    body: list[str] = []
    shapes = _Shapes(scale)
    y: float = _PAD
    for (factory, pipeline), runs in rows.items():
        label = f"{factory} / {pipeline}" if factory else pipeline
        draw = _row_runs if per_run else _row_bins
        height = draw(runs, y=y, shapes=shapes, span_s=timeline.span_s)
        body.append(
            f'<text x="{_LABEL_W - 8}" y="{y + height / 2 + 4:.0f}" text-anchor="end">'
            f"{escape(shorten(label, 40))} ({len(runs)})</text>"
        )
        y += height + 6
    body = [*_axis(timeline, top=y), *body, *shapes.svg()]  # the grid under the bars
    width = _LABEL_W + _PLOT_W + _PAD * 2
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y + 30}" '
        f'role="img" aria-label="timeline of the runs">' + "".join(body) + "</svg>"
    )


def _x(seconds: float, scale: float) -> float:
    return _LABEL_W + seconds * scale


def _row_runs(runs: list[RunSpan], *, y: float, shapes: _Shapes, span_s: float) -> float:
    """A bar per run, packed into lanes so overlapping runs do not hide each other."""
    lane_ends = [-1.0] * _LANES
    used = 1
    for run in sorted(runs, key=lambda r: r.trigger):
        end = run.run_end if run.run_end is not None else run.trigger + span_s / 200
        lane = next((i for i, free in enumerate(lane_ends) if free <= run.trigger), None)
        lane = lane if lane is not None else min(range(_LANES), key=lambda i: lane_ends[i])
        lane_ends[lane] = max(lane_ends[lane], end)
        used = max(used, lane + 1)
        top = y + lane * 5
        begin = run.run_start if run.run_start is not None else run.trigger
        if begin > run.trigger:
            shapes.add(run.trigger, top, begin - run.trigger, 4, _QUEUE)
        shapes.add(begin, top, max(end - begin, 0.0), 4, COLOURS[run.kind])
    return max(used * 5 + 4, 18)


def _row_bins(runs: list[RunSpan], *, y: float, shapes: _Shapes, span_s: float) -> float:
    """Triggers per time bin stacked by outcome (top), runs running per bin (bottom band)."""
    width_s = span_s / BINS
    triggers: list[Counter[str]] = [Counter() for _ in range(BINS)]
    running = [0] * BINS
    for run in runs:
        triggers[min(int(run.trigger / width_s), BINS - 1)][run.kind] += 1
        if run.run_start is not None and run.run_end is not None:
            first = min(int(run.run_start / width_s), BINS - 1)
            last = min(int(run.run_end / width_s), BINS - 1)
            for i in range(first, last + 1):
                running[i] += 1
    peak = max(sum(c.values()) for c in triggers) or 1
    busiest = max(running) or 1
    for i, counts in enumerate(triggers):
        bottom = y + 20.0
        for kind in KINDS:
            if counts[kind]:
                height = 20 * counts[kind] / peak
                bottom -= height
                shapes.add(i * width_s, bottom, width_s, height, COLOURS[kind])
        if running[i]:
            height = 8 * running[i] / busiest
            shapes.add(i * width_s, y + 30 - height, width_s, height, _RUNNING)
    return 30.0


class _Shapes:
    """Rectangles gathered by colour, drawn as one SVG path per colour: a fifth of the bytes of
    a ``<rect>`` each, which keeps a 10,000-run page small."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.by_fill: dict[str, list[str]] = {}

    def add(self, start: float, top: float, length: float, height: float, fill: str) -> None:
        x, width = _x(start, self.scale), max(length * self.scale, 1.0)
        self.by_fill.setdefault(fill, []).append(
            f"M{x:.1f} {top:.1f}h{width:.1f}v{height:.1f}h-{width:.1f}z"
        )

    def svg(self) -> list[str]:
        return [f'<path fill="{fill}" d="{"".join(d)}"/>' for fill, d in self.by_fill.items()]


def _axis(timeline: Timeline, *, top: float) -> list[str]:
    ticks = []
    scale = _PLOT_W / timeline.span_s
    for i in range(6):
        seconds = timeline.span_s * i / 5
        x = _x(seconds, scale)
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        ticks.append(f'<line x1="{x:.1f}" y1="{_PAD}" x2="{x:.1f}" y2="{top}" stroke="#eee"/>')
        ticks.append(
            f'<text x="{x:.1f}" y="{top + 16}" text-anchor="{anchor}">{_clock(seconds)}</text>'
        )
    return ticks


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"+{hours}:{minutes:02d}:{secs:02d}"


def _figures(summary: Summary) -> str:
    retried = sum(runs for attempts, runs in summary.attempts.items() if attempts > 1)
    throttled = sum(e.count for e in summary.errors if "throttl" in e.code.lower())
    rows: list[tuple[str, int | str]] = [
        ("runs retried (more than one createRun)", retried),
        ("createRun requests in all", sum(n * runs for n, runs in summary.attempts.items())),
        ("runs found by reconciliation (answer lost, no second post)", summary.reconciled),
        ("runs that failed throttled", throttled),
    ]
    if summary.outcomes is not None and summary.outcomes.queued_ms is not None:
        queued = summary.outcomes.queued_ms
        figures = f"{queued.p50} / {queued.p95} / {queued.max}"
        rows.append(("queue time p50 / p95 / max (ms)", figures))
    cells = "".join(f'<tr><td>{escape(k)}</td><td class="n">{v}</td></tr>' for k, v in rows)
    return f"<h2>Throttling, retries, reconciliation</h2><table>{cells}</table>"


def _failures(summary: Summary) -> str:
    rows = [
        ("trigger", error.code, error.count, error.example, "")
        for error in summary.errors[:FAILURES_SHOWN]
    ]
    if summary.outcomes is not None:
        rows += [
            ("in ADF", group.code, group.count, group.example, group.monitor_url)
            for group in summary.outcomes.failures[:FAILURES_SHOWN]
        ]
    if not rows:
        return "<h2>Failures</h2><p>None.</p>"
    cells = "".join(
        f"<tr><td>{where}</td><td>{escape(code)}</td><td class='n'>{count}</td>"
        f"<td>{escape(shorten(message, 160))}</td><td>{_link(url)}</td></tr>"
        for where, code, count, message, url in rows
    )
    header = "<tr><th>where</th><th>code</th><th>runs</th><th>example</th><th>monitor</th></tr>"
    return f"<h2>Failures</h2><table>{header}{cells}</table>"


def _link(url: str) -> str:
    if not url.startswith("https://"):
        return ""
    return f'<a href="{escape(url)}" rel="noreferrer">open in ADF</a>'
