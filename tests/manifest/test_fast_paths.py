"""The field reader's shortcuts for the common case read what its full checks read: a repeated
subscription, a plain id, a short integer parameter; and everything else still gets checked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchrun.manifest.loader import load_manifest

if TYPE_CHECKING:
    from pathlib import Path

    from tests.manifest.conftest import IssuesOf

SUB = "6f992f45-3464-5b3d-9569-fe8eb6d62303"
HEAD = "version: 1\ndefaults: {resource_group: rg, factory: fac, pipeline: pipe}\nruns:\n"


def test_repeated_fields_read_the_same_as_the_first(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        HEAD
        + f"  - {{id: a, subscription: {SUB}, parameters: {{n: 0, m: 123456789012345678}}}}\n"
        + f"  - {{id: 'b', subscription: '{SUB}', parameters: {{n: 17, m: -3}}}}\n"
        + "  - {id: c, subscription: '${SUB}', parameters: {n: 9223372036854775807}}\n"
        + f"  - {{id: d, subscription: {SUB}, parameters: {{n: '17'}}}}\n"
    )
    runs = load_manifest(path, environ={"SUB": SUB}).runs
    assert [run.id for run in runs] == ["a", "b", "c", "d"]
    assert {run.subscription for run in runs} == {SUB}
    assert runs[0].subscription is runs[1].subscription is runs[3].subscription
    assert [run.parameters for run in runs] == [
        {"n": 0, "m": 123456789012345678},
        {"n": 17, "m": -3},
        {"n": 9223372036854775807},
        {"n": "17"},
    ]


def test_what_the_shortcuts_pass_over_is_still_checked(issues_of: IssuesOf) -> None:
    issues = issues_of(
        HEAD
        + f"  - {{id: '', subscription: {SUB}}}\n"
        + f"  - {{id: 12, subscription: {SUB}}}\n"
        + f"  - {{id: e, subscription: {SUB}, parameters: {{n: 9223372036854775808}}}}\n"
        + f"  - {{id: f, subscription: {SUB}, parameters: {{n: 0x1F}}}}\n"
        + "  - {id: g, subscription: 12}\n"
        + "  - {id: h, subscription: 'not-a-guid', reference_run_id: \"r\\u0007\"}\n"
    )
    assert [issue.split(": ", 2)[:2] for issue in issues] == [
        ["4:10", "runs[0].id"],
        ["5:10", "runs[1].id"],
        ["6:81", "runs[2].parameters.n"],
        ["7:81", "runs[3].parameters.n"],
        ["8:27", "runs[4].subscription"],
        ["9:59", "runs[5].reference_run_id"],
    ]
    assert "must not be empty" in issues[0]
    assert "expected a string, got the integer 12" in issues[1]
    assert "does not fit in 64 bits" in issues[2]
    assert "hexadecimal" in issues[3]
    assert "holds a control character" in issues[5]
