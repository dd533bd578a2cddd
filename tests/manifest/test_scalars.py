"""Plain scalars mean what they look like, or the manifest says how to write them (issue 12.19)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from batchrun.errors import ManifestError, ManifestIssue
from batchrun.manifest.loader import load_manifest

if TYPE_CHECKING:
    from pathlib import Path

    from tests.manifest.conftest import IssuesOf

SUB = "11111111-1111-1111-1111-111111111111"
RUN = f"version: 1\nruns:\n  - subscription: {SUB}\n    resource_group: rg\n"


def load(tmp_path: Path, text: str) -> dict[str, object]:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    [run] = load_manifest(path, environ={}).runs
    return dict(run.parameters)


def params(flow: str) -> str:
    return RUN + f"    factory: fac\n    pipeline: P\n    parameters: {flow}\n"


def test_the_yaml_1_1_surprises_are_errors_at_their_position_with_the_fix(
    issues_of: IssuesOf,
) -> None:
    text = params("{country: NO, flag: on, code: 017, ver: 1.10, t: 12:30, zip: 01234}")
    assert issues_of(text) == [
        "7:27: runs[0].parameters.country: YAML 1.1 reads NO as false, YAML 1.2 as text:"
        " quote it ('NO') to pass text, or write false",
        "7:37: runs[0].parameters.flag: YAML 1.1 reads on as true, YAML 1.2 as text:"
        " quote it ('on') to pass text, or write true",
        "7:47: runs[0].parameters.code: YAML 1.1 reads 017 as an octal number, 15:"
        " quote it ('017') to pass text, or write 15",
        "7:57: runs[0].parameters.ver: YAML reads 1.10 as the number 1.1:"
        " quote it ('1.10') to pass text, or write 1.1",
        "7:66: runs[0].parameters.t: YAML 1.1 reads 12:30 as a base-60 number, 750:"
        " quote it ('12:30') to pass text, or write 750",
        "7:78: runs[0].parameters.zip: YAML 1.1 reads 01234 as an octal number, 668:"
        " quote it ('01234') to pass text, or write 668",
    ]


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("yes", "YAML 1.1 reads yes as true"), ("No", "YAML 1.1 reads No as false"),
        ("OFF", "YAML 1.1 reads OFF as false"), ("y", "read y as true"),
        ("N", "read N as false"), ("0x1F", "a hexadecimal number, 31"),
        ("0b101", "a binary number, 5"), ("1_000", "'_' separators, 1000"),
        ("+5", "a '+' sign, 5"), ("1:30.5", "the number 90.5"), ("2.50", "the number 2.5"),
        (".5", "the number 0.5"), ("1.", "the number 1.0"),
        ("0.1000000000000000055511151231257827", "the number 0.1"),
        ("1e3", "as text but YAML 1.2"), ("-.5", "as text but YAML 1.2"),
        ("0o17", "as text but YAML 1.2"), ("09", "as text but YAML 1.2"),
        ("1.5e3", "as text but YAML 1.2"),
        # an explicit tag on the wrong text is an error too, not a crash
        ("!!int abc", "'abc' is not an integer"), ("!!float abc", "'abc' is not a number"),
        ("!!bool maybe", "'maybe' is not a boolean"),
        ("!!int '017'", "YAML 1.1 reads 017 as an octal number, 15"),
    ],
)  # fmt: skip
def test_a_scalar_that_is_not_what_it_looks_like_is_an_error_at_its_position(
    issues_of: IssuesOf, value: str, what: str
) -> None:
    [issue] = issues_of(params(f"{{v: {value}}}"))
    assert issue.startswith("7:21: runs[0].parameters.v: ")
    assert what in issue


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True), ("False", False), ("TRUE", True), ("null", None), ("~", None),
        ("", None), ("0", 0), ("-12", -12), ("1.5", 1.5), ("0.1", 0.1), ("-0.25", -0.25),
        ("10.0", 10.0), ("1.5e+3", 1500.0), ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)), ("'017'", "017"), ('"NO"', "NO"), ("'1.10'", "1.10"),
        ("yEs", "yEs"), ("no-way", "no-way"), ("1.2.3", "1.2.3"), ("12:30:xx", "12:30:xx"),
        ("-", "-"), ("+x", "+x"), ("nO", "nO"),
    ],
)  # fmt: skip
def test_what_every_yaml_reads_alike_is_taken_as_it_is(
    tmp_path: Path, text: str, value: object
) -> None:
    assert load(tmp_path, params(f"{{v: {text}}}")) == {"v": value}


def test_plain_scalars_are_checked_inside_lists_and_mappings(issues_of: IssuesOf) -> None:
    [issue] = issues_of(params("{a: [1, {b: [ok, on]}]}"))
    assert issue.startswith("7:34: runs[0].parameters.a[1].b[1]: YAML 1.1 reads on as true")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("is_recovery", "on", "expected true or false, got on, which YAML 1.2 reads as text:"
         " write true"),
        ("start_from_failure", "No", "expected true or false, got No, which YAML 1.2 reads"),
        ("factory", "1e3", "batchrun's YAML 1.1 reads 1e3 as text but YAML 1.2"),
        ("pipeline", "09", "batchrun's YAML 1.1 reads 09 as text but YAML 1.2"),
        ("id", "1.5e3", "batchrun's YAML 1.1 reads 1.5e3 as text but YAML 1.2"),
        ("pipeline", "n", "YAML 1.1 tools other than batchrun's read n as false"),
    ],
)  # fmt: skip
def test_every_field_takes_plain_scalars_by_the_same_rule(
    issues_of: IssuesOf, field: str, value: str, expected: str
) -> None:
    fields = {"factory": "fac", "pipeline": "P", "reference_run_id": "r", field: value}
    body = "".join(f"    {key}: {text}\n" for key, text in fields.items())
    found = issues_of(RUN + body)
    assert any(f"runs[0].{field}: {expected}" in issue for issue in found), found


def test_a_quoted_name_is_not_mistaken_for_a_plain_one_read_before(issues_of: IssuesOf) -> None:
    # names are cached once checked: a quoted '1e3' must not let a plain 1e3 through
    text = RUN + "    factory: ['1e3', abc]\n    pipeline: P\n  - subscription: x\n"
    text += "    resource_group: rg\n    factory: 1e3\n    pipeline: P\n"
    found = issues_of(text)
    assert any("runs[1].factory: batchrun's YAML 1.1 reads 1e3" in issue for issue in found)


def test_version_must_be_written_1(issues_of: IssuesOf) -> None:
    text = params("{}").replace("version: 1", "version: 0x1")
    assert issues_of(text) == ["1:10: version: expected 1, got 0x1: write 1"]


def test_issue_type_is_the_manifest_one(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(params("{v: on}"))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, environ={})
    assert caught.value.issues == [
        ManifestIssue(
            str(path), 7, 21, "runs[0].parameters.v",
            "YAML 1.1 reads on as true, YAML 1.2 as text: quote it ('on') to pass text,"
            " or write true",
        )
    ]  # fmt: skip
