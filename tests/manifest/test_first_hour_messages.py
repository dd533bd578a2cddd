"""Messages that used to say too little: misindented lines, ``$VAR`` without braces, and a
malformed ``${...}`` quoted whole."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from batchrun.errors import ManifestError
from batchrun.manifest.envsubst import SubstitutionError, bare_references, substitute
from batchrun.manifest.indentation import indentation_hint
from batchrun.manifest.loader import load_manifest

if TYPE_CHECKING:
    from pathlib import Path

HEAD = """\
version: 1
runs:
  - factory: sales-eu
    pipeline: LoadOrders
    subscription: 11111111-1111-1111-1111-111111111111
    resource_group: rg
"""


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, environ=environ or {})
    return [f"{i.line}:{i.column}: {i.message}" for i in caught.value.issues]


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (
            '    parameters:\n      run_date: "2026-01-01"\n     region: eu\n',
            "9:6: invalid YAML: while parsing a block mapping at line 3, column 5, did not find "
            "expected key; is this key indented under 'parameters' (line 7)? Its keys start at "
            "column 7, this line at column 6",
        ),
        (
            '    parameters:\n      run_date: "2026-01-01"\n        region: eu\n',
            "9:9: invalid YAML: while parsing a block mapping at line 8, column 7, did not find "
            "expected key; 'run_date' (line 8) already has its value, so nothing can be indented "
            "under it: line this key up with 'run_date' at column 7",
        ),
        (
            "   start_from_failure: true\n",
            "7:4: invalid YAML: while parsing a block collection at line 3, column 3, did not "
            "find expected '-' indicator; is this key part of the list item at line 3? Its keys "
            "start at column 5, this line at column 4",
        ),
    ],
)
def test_a_misindented_line_gets_a_hint(tmp_path: Path, tail: str, expected: str) -> None:
    assert problems(tmp_path, HEAD + tail) == [expected]


def test_a_parameter_beside_parameters_instead_of_under_it_gets_a_hint(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + '    parameters:\n    run_date: "2026-01-01"\n')
    assert found[1].startswith("8:5: unknown key 'run_date': expected dates, factory, ")
    assert found[1].endswith(
        "; is this key meant to be indented under 'parameters' (line 7)? "
        "Indent it further than column 5"
    )


def test_an_unknown_key_with_nothing_above_to_blame_gets_no_hint() -> None:
    text = HEAD + "    pipline: x\n"
    assert indentation_hint(text, 7, unknown_key=True) is None
    assert indentation_hint(text, 99) is None


@pytest.mark.parametrize(
    ("text", "quoted", "hint"),
    [
        ("${RUN_DATE-2026-11-26}", "'${RUN_DATE-2026-11-26}'", "(here: ${RUN_DATE:-2026-11-26})"),
        ("x ${RUN_DATE:2026} y", "'${RUN_DATE:2026}'", "(here: ${RUN_DATE:-2026})"),
        ("${1BAD}", "'${1BAD}'", "(NAME: letters, digits and '_')"),
        ("${REGION", "'${REGION'", "the closing '}' is missing"),
    ],
)
def test_a_malformed_reference_is_quoted_whole_with_the_likely_spelling(
    text: str, quoted: str, hint: str
) -> None:
    with pytest.raises(SubstitutionError) as caught:
        substitute(text, {})
    assert caught.value.message.startswith(f"{quoted} is not a valid substitution")
    assert hint in caught.value.message


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("$RUN_DATE", [(0, "RUN_DATE")]),
        ("a-$X and ${Y} and $Z", [(2, "X"), (18, "Z")]),
        ("$$RUN_DATE", []),
        ("^sales$", []),
        ("costs $5", []),
        ("${Y:-$}", []),
    ],
)
def test_bare_references_are_found_but_not_escaped_or_braced_ones(
    text: str, found: list[tuple[int, str]]
) -> None:
    assert bare_references(text) == found


def test_a_bare_reference_warns_once_that_it_is_sent_literally(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    runs = "".join(
        f"  - {{factory: sales-eu, pipeline: P{n}, parameters: {{d: $RUN_DATE, k: $$KEEP}}}}\n"
        for n in range(3)
    )
    path.write_text(
        "version: 1\ndefaults: {subscription: 11111111-1111-1111-1111-111111111111, "
        f"resource_group: rg}}\nruns:\n{runs}"
    )
    manifest = load_manifest(path, environ={"RUN_DATE": "2026-11-26"})
    assert manifest.runs[0].parameters == {"d": "$RUN_DATE", "k": "$KEEP"}
    (warning,) = manifest.warnings
    assert (warning.line, warning.path) == (4, "runs[0].parameters.d")
    assert warning.message == (
        "'$RUN_DATE' is sent literally: only ${RUN_DATE} is substituted; write ${RUN_DATE} to "
        "substitute it, or $$RUN_DATE to keep the text (and this warning away) "
        "(and 2 more places)"
    )
