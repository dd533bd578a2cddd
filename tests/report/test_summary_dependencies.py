"""``summary`` counts the runs skipped because of a dependency, by root cause, in every format."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from batchrun.report.html import render_html
from batchrun.report.render import render
from batchrun.report.summary import summarize
from batchrun.report.timeline import read_timeline

if TYPE_CHECKING:
    from pathlib import Path

SUB = "11111111-1111-1111-1111-111111111111"


def line(name: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": name, "subscription": SUB, "resource_group": "rg", "factory": "f",
        "pipeline": "p", "status": status, "run_id": None, "attempts": 0,
        "started_at": "2026-11-03T02:00:00Z", "finished_at": "2026-11-03T02:00:01Z", **extra,
    }  # fmt: skip


def skipped(name: str, needs: str, root: str, outcome: str) -> dict[str, Any]:
    because = {"needs": needs, "root": root, "root_outcome": outcome}
    return line(name, "skipped", reason=f"needs {needs}", skipped_because=because)


def write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in lines))
    return path


NIGHT = [
    line("load.a", "succeeded", run_id="r-a", outcome="Failed"),
    skipped("mart.a", "load.a", "load.a", "Failed"),
    skipped("export.a", "mart.a", "load.a", "Failed"),
    line("load.b", "failed", error={"code": "PipelineNotFound", "message": "no"}),
    skipped("mart.b", "load.b", "load.b", "failed to trigger"),
    line("load.c", "succeeded", run_id="r-c", outcome="Succeeded"),
    # a skip of the recovery guard is no dependency's doing
    line("rerun", "skipped", reason="a newer run x exists in the group"),
]


def test_skips_are_grouped_by_root_cause(tmp_path: Path) -> None:
    summary = summarize([write(tmp_path / "r.jsonl", NIGHT)])
    assert summary.statuses["skipped"] == 4
    assert summary.blocked == 3
    causes = [(c.root, c.outcome, c.count) for c in summary.root_causes]
    assert causes == [("load.a", "Failed", 2), ("load.b", "failed to trigger", 1)]
    assert summary.failed


def test_a_skip_decided_again_on_resume_counts_by_its_last_line(tmp_path: Path) -> None:
    resumed = [*NIGHT, line("mart.a", "succeeded", run_id="r-m")]
    summary = summarize([write(tmp_path / "r.jsonl", resumed)])
    causes = [(c.root, c.outcome, c.count) for c in summary.root_causes]
    assert causes == [("load.a", "Failed", 1), ("load.b", "failed to trigger", 1)]


def test_every_format_names_the_root_causes(tmp_path: Path) -> None:
    report = write(tmp_path / "r.jsonl", NIGHT)
    summary = summarize([report])

    table = render(summary, "table")
    assert "skipped because a run they need did not succeed: 3 (2 root causes)" in table
    assert "Skipped because of a dependency, by root cause" in table
    rows = [row.split() for row in table.splitlines() if row.startswith(("load.a ", "load.b "))]
    assert ["load.a", "Failed", "2"] in rows
    assert ["load.b", "failed", "to", "trigger", "1"] in rows

    markdown = render(summary, "markdown")
    assert "| load.a | Failed | 2 |" in markdown

    data = json.loads(render(summary, "json"))
    assert data["skipped_because_of_dependency"] == {
        "runs": 3,
        "root_causes": [
            {"root": "load.a", "root_outcome": "Failed", "runs": 2},
            {"root": "load.b", "root_outcome": "failed to trigger", "runs": 1},
        ],
    }
    page = render_html(summary, read_timeline([report]))
    assert "<b>3</b>skipped: a need did not succeed" in page


def test_a_night_without_dependencies_says_nothing_of_them(tmp_path: Path) -> None:
    summary = summarize([write(tmp_path / "r.jsonl", [line("a", "succeeded", run_id="r")])])
    assert summary.blocked == 0 and not summary.failed
    assert "dependency" not in render(summary, "table")
