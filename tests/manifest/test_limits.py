"""What a manifest may hold is bounded, and crossing a bound is a positioned error (issue 12.16)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from batchrun.manifest.limits import MAX_NESTING, MAX_PARAMETER_VALUES, MAX_YAML_NESTING
from batchrun.manifest.loader import load_manifest

if TYPE_CHECKING:
    from pathlib import Path

    from tests.manifest.conftest import Issues, IssuesOf

SUB = "11111111-1111-1111-1111-111111111111"
HEAD = f"version: 1\nruns:\n  - subscription: {SUB}\n    resource_group: rg\n"
HEAD += "    factory: fac\n    pipeline: P\n    parameters:\n"


@pytest.fixture
def issues(issues_of: IssuesOf) -> Issues:
    """The issues of a manifest with these parameters' lines."""
    return lambda parameters: issues_of(HEAD + parameters)


def bomb(levels: int) -> str:
    """Parameters whose last key expands to 10**levels strings through aliases."""
    lines = ["      l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"]
    for level in range(1, levels):
        items = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"      l{level}: &l{level} [{items}]\n")
    return "".join(lines)


@pytest.mark.parametrize("depth", [500, 2000])
def test_parameters_nested_hundreds_deep_are_an_error_not_a_recursion_error(
    issues: Issues, depth: int
) -> None:
    # libyaml stops at 1,000 levels itself; batchrun's composer at 100
    [issue] = issues("      deep: " + "[" * depth + "x" + "]" * depth + "\n")
    line, column, message = issue.split(":", 2)
    assert line == "8"
    assert 13 < int(column) <= 13 + 1000
    assert "nest" in message


def test_the_composer_stops_at_its_limit(issues: Issues) -> None:
    [issue] = issues("      deep: " + "[" * 500 + "]" * 500 + "\n")
    # the root mapping, runs and the entry are 3 levels; parameters is the 4th
    column = 13 + MAX_YAML_NESTING - 4
    assert issue == (
        f"8:{column}: lists and mappings nested more than {MAX_YAML_NESTING} deep: batchrun"
        f" reads at most {MAX_YAML_NESTING} levels (parameters at most {MAX_NESTING})"
    )


def test_parameters_may_nest_64_levels_and_not_65(tmp_path: Path, issues: Issues) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(HEAD + "      deep: " + "[" * MAX_NESTING + "]" * MAX_NESTING + "\n")
    [run] = load_manifest(path, environ={}).runs
    assert run.parameters["deep"] is not None
    [issue] = issues("      deep: " + "[" * 65 + "]" * 65 + "\n")
    assert issue.startswith(f"8:{13 + MAX_NESTING}: runs[0].parameters.deep" + "[0]" * 64 + ": ")
    assert issue.endswith(f"nested more than {MAX_NESTING} lists and mappings deep:"
                          f" parameters may nest {MAX_NESTING} levels")  # fmt: skip


def test_nesting_through_aliases_counts_the_expanded_depth(
    issues: Issues,
) -> None:
    # each anchor is 40 levels deep and holds the previous one: 200 levels once expanded,
    # while the YAML itself never nests deeper than 41
    lines = ["      a0: &a0 " + "[" * 40 + "]" * 40 + "\n"]
    lines += [
        f"      a{n}: &a{n} " + "[" * 40 + f"*a{n - 1}" + "]" * 40 + "\n" for n in range(1, 5)
    ]
    found = issues("".join(lines))
    assert found
    assert all("nested more than 64 lists and mappings deep" in issue for issue in found)


def test_a_long_chain_of_merges_is_an_error_not_a_recursion_error(
    issues: Issues,
) -> None:
    lines = ["      m0: &m0 {k0: 0}\n"]
    lines += [f"      m{n}: &m{n} {{<<: *m{n - 1}, k{n}: {n}}}\n" for n in range(1, 400)]
    found = issues("".join(lines))
    assert any(f"'<<' merges nested more than {MAX_NESTING} deep" in issue for issue in found)


def test_an_alias_bomb_in_parameters_is_rejected_where_it_crosses_the_limit(
    issues: Issues,
) -> None:
    # 10**7 strings from 7 lines: PyYAML shares aliased nodes, so only walking them costs
    [issue] = issues(bomb(7))
    assert issue == (
        f"12:11: runs[0].parameters.l4: the parameters expand to more than"
        f" {MAX_PARAMETER_VALUES:,} values by here (an alias repeats all it names): a run's"
        f" parameters may hold at most {MAX_PARAMETER_VALUES:,}"
    )


def test_aliases_within_the_limit_are_expanded(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(HEAD + bomb(4))  # 11,110 strings and lists
    [run] = load_manifest(path, environ={}).runs
    assert len(run.parameters["l3"]) == 10
    assert run.parameters["l3"][9][9][9] == ["x"] * 10


def test_integers_must_fit_64_bits(tmp_path: Path, issues: Issues) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(HEAD + "      max: 9223372036854775807\n      min: -9223372036854775808\n")
    [run] = load_manifest(path, environ={}).runs
    assert run.parameters == {"max": 2**63 - 1, "min": -(2**63)}
    found = issues("      a: 9223372036854775808\n      b: -9223372036854775809\n")
    assert [issue.split(": ")[:2] for issue in found] == [
        ["8:10", "runs[0].parameters.a"],
        ["9:10", "runs[0].parameters.b"],
    ]
    assert "does not fit in 64 bits" in found[0]


def test_an_integer_of_5000_digits_is_an_error_not_a_value_error(
    issues: Issues,
) -> None:
    [issue] = issues("      big: " + "7" * 5000 + "\n")
    assert issue.startswith("8:12: runs[0].parameters.big: the integer 777777777777...777777")
    assert "(5000 digits) does not fit in 64 bits" in issue
