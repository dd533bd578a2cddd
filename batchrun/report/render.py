"""A summary (:mod:`batchrun.report.summary`) for people: aligned text tables, JSON, or
GitHub-flavoured markdown (``batchrun summary --format``, the end of ``run`` and ``watch``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal

from batchrun.report.summary import SLOWEST
from batchrun.text import counted, shorten

if TYPE_CHECKING:
    from batchrun.report.summary import Summary

__all__ = ["FAILED_SHOWN", "FORMATS", "Format", "render"]

Format = Literal["table", "json", "markdown"]
FORMATS: tuple[Format, ...] = ("table", "json", "markdown")
# failed run ids the table and markdown name; json lists them all
FAILED_SHOWN = 10
# an example message in the error table: enough to recognise it, short enough for a terminal
_EXAMPLE_CHARS = 100


def render(summary: Summary, fmt: Format) -> str:
    """The summary as aligned text, JSON or GitHub-flavoured markdown; no trailing newline."""
    if fmt == "json":
        return json.dumps(summary.to_dict(), indent=2, ensure_ascii=False)
    if fmt == "markdown":
        return _markdown(summary)
    if fmt == "table":
        return _table(summary)
    raise ValueError(f"unknown summary format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _sections(summary: Summary) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table, shared by the text and markdown renderings."""
    statuses = list(summary.statuses)
    sections = [
        (
            "Runs by status",
            ["status", "runs"],
            [[status, str(count)] for status, count in summary.statuses.items()]
            + [["total", str(summary.runs)]],
        ),
        (
            "By factory / pipeline",
            ["factory", "pipeline", *statuses],
            [
                [p.factory, p.pipeline, *(str(p.statuses.get(s, 0)) for s in statuses)]
                for p in summary.pipelines
            ],
        ),
        (
            "Error codes",
            ["code", "runs", "example message"],
            [[e.code, str(e.count), shorten(e.example, _EXAMPLE_CHARS)] for e in summary.errors],
        ),
        (
            "Skipped because of a dependency, by root cause",
            ["root run", "ended", "runs skipped"],
            [[c.root, c.outcome, str(c.count)] for c in summary.root_causes],
        ),
        (
            "Attempts per run",
            ["attempts", "runs"],
            [[str(n), str(runs)] for n, runs in summary.attempts.items()],
        ),
        (
            f"Slowest {SLOWEST} runs",
            ["id", "factory", "pipeline", "status", "duration_ms"],
            [[s.id, s.factory, s.pipeline, s.status, str(s.duration_ms)] for s in summary.slowest],
        ),
    ]
    if summary.outcomes is not None:
        for title, header, rows in summary.outcomes.sections():
            if title.startswith("Failures"):
                rows = [[*row[:3], shorten(row[3], _EXAMPLE_CHARS), row[4]] for row in rows]
            sections.append((title, header, rows))
    return [section for section in sections if section[2]]


def _headline(summary: Summary) -> list[str]:
    counts = ", ".join(f"{count} {status}" for status, count in summary.statuses.items())
    lines = [f"{summary.runs} runs ({summary.lines} report lines): {counts}"]
    if summary.blocked:
        roots = len(summary.root_causes)
        lines.append(
            f"skipped because a run they need did not succeed: {summary.blocked} "
            f"({counted(roots, 'root cause')})"
        )
    lines.append(f"reconciled: {summary.reconciled}")
    span, rate = summary.span_s, summary.throughput
    if span is not None:
        rate_text = f", {rate:.1f} lines/s" if rate is not None else ""
        lines.append(
            f"wall clock: {summary.first_started_at} -> {summary.last_finished_at} "
            f"({span:.1f}s{rate_text})"
        )
    return lines


def _numeric_columns(header: list[str], rows: list[list[str]]) -> list[bool]:
    return [all(row[i].isdigit() for row in rows) for i in range(len(header))]


def _text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    numeric = _numeric_columns(header, rows)

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(cells, widths, numeric, strict=True)
        ]
        return "  ".join(padded).rstrip()

    return [line(header), "  ".join("-" * width for width in widths), *map(line, rows)]


def _table(summary: Summary) -> str:
    out = _headline(summary)
    for title, header, rows in _sections(summary):
        out += ["", title, *_text_table(header, rows)]
    out += _failed_lines(summary)
    return "\n".join(out)


def _failed_lines(summary: Summary) -> list[str]:
    """The first failed ids, and how many more (json lists them all)."""
    ids = summary.failed_ids
    if not ids:
        return []
    shown = ", ".join(ids[:FAILED_SHOWN])
    more = f" and {len(ids) - FAILED_SHOWN} more" if len(ids) > FAILED_SHOWN else ""
    return ["", f"Failed runs ({len(ids)}): {shown}{more}"]


def _md_cell(cell: str) -> str:
    return cell.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _markdown(summary: Summary) -> str:
    out = ["## batchrun summary", "", *(f"- {line}" for line in _headline(summary))]
    for title, header, rows in _sections(summary):
        numeric = _numeric_columns(header, rows)
        out += ["", f"### {title}", ""]
        out.append("| " + " | ".join(_md_cell(cell) for cell in header) + " |")
        out.append("|" + "|".join("---:" if right else "---" for right in numeric) + "|")
        out += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows]
    out += [_md_cell(line) for line in _failed_lines(summary)]
    return "\n".join(out)
