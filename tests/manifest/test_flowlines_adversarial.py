"""Manifests written to tell the line reader (:mod:`batchrun.manifest.flowlines`) from libyaml:
YAML 1.1's implicit types, odd spacing, comments, line ends, quotes, nesting, anchors and tags,
heads and tails, defaults, ``${VAR}``, dates and needs. Each reads as libyaml reads it: the same
runs, positions, fingerprint, warnings, needs and error messages."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import pytest
from yaml.nodes import MappingNode, Node, ScalarNode

from batchrun.errors import ManifestError
from batchrun.manifest import flowlines
from batchrun.manifest.loader import load_manifest
from batchrun.manifest.yamlnodes import Loader

if TYPE_CHECKING:
    from pathlib import Path

HEAD = "version: 1\ndefaults: {resource_group: rg, pipeline: P, subscription: sub-a}\nruns:\n"
FIRST = "  - {id: r1, factory: fac-1}\n"
LAST = "  - {id: r2, factory: fac-2, parameters: {p: 1}}\n"
R3 = "  - {id: r3, factory: fac-3, "  # an entry's start, its other fields to follow
ENV = {"X": "val", "F": "fac-9"}

# values that YAML 1.1 types otherwise than they look, or that are no valid name
VALUES = (
    "yes", "no", "on", "off", "y", "n", "Y", "N", "~", "null", "NULL", ".inf", "-.inf", ".NaN",
    "0o17", "0x1F", "0b101", "012", "00", "1_000", "1:30", "190:20:30", "2026-11-03",
    "2026-11-03T10:00:00Z", "+1", "-0", "1e3", "1.0e+3", ".5", "5.", "1.10",
    "9223372036854775808", "a b", "x  y", "(x)", "a@b", "a/b", "_x", "f-", "-f", "a -", "a - b",
    "'a'", "''", "'it''s'", '"a\\nb"', "'yes'", '"012"', "[]", "{}", "[a, b]", "{a: b}",
    "'${X}'", "'$X'", "'é'",
)  # fmt: skip
FIELDS = ("id", "factory", "subscription", "parameter value", "parameter name", "needs")

LINES = {
    "no newline at the end": HEAD + FIRST + LAST.rstrip("\n"),
    "spaces after an entry": HEAD + FIRST.replace("}\n", "}   \n") + LAST,
    "a comment after an entry": HEAD + FIRST.replace("}\n", "} # c }\n") + LAST,
    "a tab after an entry": HEAD + FIRST.replace("}\n", "}\t\n") + LAST,
    "a comment without a space": HEAD + FIRST.replace("}\n", "}#c\n") + LAST,
    "one CRLF line": HEAD + FIRST.replace("\n", "\r\n") + LAST,
    "CRLF lines": (HEAD + FIRST + LAST).replace("\n", "\r\n"),
    "a BOM": "\ufeff" + HEAD + FIRST + LAST,
    "non-ASCII in the head": "# é\n" + HEAD + FIRST + LAST,
    "non-ASCII in a comment": HEAD + "  # é\n" + FIRST + LAST,
    "an empty entry": HEAD + FIRST + "  - {}\n" + LAST,
    "a trailing comma": HEAD + FIRST + "  - {id: r3, factory: fac-3, }\n" + LAST,
    "nested parameters": HEAD + FIRST + "  - {id: r3, factory: fac-3, parameters: {a: [1, [2]]}}\n",
    "an anchor": HEAD + FIRST + "  - {id: &a r3, factory: fac-3}\n" + LAST,
    "a tag": HEAD + FIRST + "  - {id: !!str r3, factory: fac-3}\n" + LAST,
    "an anchored head": HEAD.replace("defaults: ", "defaults: &d ") + FIRST + LAST,
    "runs not at the top": HEAD.replace("runs:", "x:\n  runs:") + FIRST + LAST,
    "runs indented": HEAD.replace("runs:", " runs:") + FIRST + LAST,
    "a document start": "---\n" + HEAD + FIRST + LAST,
    "a directive": "%YAML 1.1\n---\n" + HEAD + FIRST + LAST,
    "a document end": HEAD + FIRST + LAST + "...\n",
    "a second document": HEAD + FIRST + LAST + "---\n",
    "a block entry between": HEAD + FIRST + "  - id: r3\n    factory: fac-3\n" + LAST,
    "entries not indented": HEAD + FIRST.lstrip() + LAST.lstrip(),
    "entries indented unlike": HEAD + FIRST + "    - {id: r3, factory: fac-3}\n" + LAST,
    "blank and comment lines": HEAD + FIRST + "\n   \n      # c\n#c\n" + LAST,
    "a tab on a blank line": HEAD + FIRST + "\t\n" + LAST,
    "spaces inside braces": HEAD + FIRST + "  - { id: r3, factory: fac-3 }\n" + LAST,
    "two spaces after a comma": HEAD + FIRST + "  - {id: r3,  factory: fac-3}\n" + LAST,
    "a key twice": HEAD + FIRST + "  - {id: r3, id: r4, factory: fac-3}\n" + LAST,
    "a parameter twice": HEAD + FIRST + R3 + "parameters: {p: 1, 'p': 2}}\n",
    "an id twice, quoted once": HEAD + FIRST + "  - {id: 'r1', factory: fac-3}\n" + LAST,
    "an id that is derived": HEAD + "  - {factory: fac-1}\n  - {factory: 'fac-1'}\n"
    "  - {id: fac-1.P#2, factory: fac-3}\n",
    "an unknown key": HEAD + FIRST + "  - {id: r3, factory: fac-3, factroy: 1}\n" + LAST,
    "a missing field": HEAD + FIRST + "  - {id: r3}\n" + LAST,
    "recovery fields": HEAD
    + FIRST
    + "  - {id: r3, factory: fac-3, is_recovery: yes, reference_run_id: x}\n",
    "dates": HEAD
    + FIRST
    + "  - {id: r3, factory: fac-3, dates: {from: 2026-11-01, to: 2026-11-03, parameter: d}}\n",
    "needs": HEAD + FIRST + "  - {id: r3, factory: fac-3, needs: [r1, r2]}\n" + LAST,
    "needs of nothing": HEAD + FIRST + "  - {id: r3, factory: fac-3, needs: [r9]}\n" + LAST,
    "a variable": HEAD + FIRST + "  - {id: r3, factory: '${F}', parameters: {p: 'a $X ${X}'}}\n",
    "an unset variable": HEAD + FIRST + "  - {id: r3, factory: fac-3, parameters: {p: '${NO}'}}\n",
    "a plain variable": HEAD + FIRST + "  - {id: r3, factory: fac-3, parameters: {p: ${X}}}\n",
    "a long key": HEAD + FIRST + R3 + f"parameters: {{{'p' * 1030}: 1}}}}\n",
    "a long value": HEAD + FIRST + R3 + f"parameters: {{p: {'v' * 3000}}}}}\n",
    "a version as text": HEAD.replace("version: 1", "version: '1'") + FIRST,
    "a version 1.0": HEAD.replace("version: 1", "version: 1.0") + FIRST,
    "defaults with an id": HEAD.replace("{", "{id: x, ") + FIRST,
    "defaults with a bad name": HEAD.replace("pipeline: P", "pipeline: a.b") + FIRST,
    "defaults with parameters": HEAD.replace("{", "{parameters: {d: 1, p: x}, ") + FIRST + LAST,
    "a list tagged as a string key": HEAD.replace("runs:", "? !!str [a]\n: x\nruns:") + FIRST,
    "a mapping tagged as a string key": HEAD.replace("runs:", "!!str {a: b}: x\nruns:") + FIRST,
}


def _many(count: int, entry: Any) -> str:
    return HEAD + "".join(entry(n) for n in range(count))


def _needing(n: int, *, every: int) -> str:
    needs = f", needs: [r{n - 1}]" if n and n % every == 0 else ""
    return f"  - {{id: r{n}, factory: fac-1{needs}}}\n"


MANY = {
    "needs in one entry of eight": _many(300, lambda n: _needing(n, every=8)),
    "needs in one entry of nine": _many(300, lambda n: _needing(n, every=9)),
    "needs in every entry": _many(300, lambda n: _needing(n, every=1)),
    "invalid names past the first 64": _many(300, lambda n: f"  - {{id: r{n}, factory: f{n}}}\n"),
    "ids again past the first 64": _many(300, lambda n: f"  - {{id: r{n % 70}, factory: fac-1}}\n"),
    "an octal past the first 200": _many(
        300, lambda n: f"  - {{id: r{n}, factory: fac-1, parameters: {{p: 0{n}}}}}\n"
    ),
    "a bad last line": _many(300, lambda n: f"  - {{id: r{n}, factory: fac-1}}\n") + "  - bad\n",
    "an id again on the last line": _many(300, lambda n: f"  - {{id: r{n}, factory: fac-1}}\n")
    + "  - {id: 'r1', factory: fac-1}\n",
}


def _read(path: Path) -> Any:
    try:
        manifest = load_manifest(path, environ=ENV)
    except ManifestError as exc:
        return [str(issue) for issue in exc.issues]
    runs = [
        (run, run.source, [(key, type(value), value) for key, value in run.parameters.items()])
        for run in manifest.runs
    ]
    return runs, manifest.fingerprint, manifest.warnings, manifest.needs


def _by_libyaml(path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patched:
        patched.setattr("batchrun.manifest.loader._Reader.read_lines", lambda self, stream: None)
        return _read(path)


def _check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(text.encode())
    assert _read(path) == _by_libyaml(path, monkeypatch)


@pytest.mark.parametrize("field", FIELDS)
def test_a_value_that_yaml_types_reads_as_libyaml_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    for value in VALUES:
        fields = {"id": "r3", "factory": "fac-3", "parameters": "{p: 1, q: x}"}
        if field == "parameter value":
            fields["parameters"] = f"{{p: {value}, q: x}}"
        elif field == "parameter name":
            fields["parameters"] = f"{{{value}: 1, q: x}}"
        else:
            fields[field] = value
        entry = ", ".join(f"{key}: {text}" for key, text in fields.items())
        # twice: once read first, once as read before
        _check(tmp_path, monkeypatch, f"{HEAD}{FIRST}  - {{{entry}}}\n  - {{{entry}}}\n")


@pytest.mark.parametrize("text", LINES.values(), ids=LINES.keys())
def test_an_odd_line_reads_as_libyaml_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    _check(tmp_path, monkeypatch, text)


@pytest.mark.parametrize("text", MANY.values(), ids=MANY.keys())
def test_a_longer_manifest_reads_as_libyaml_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    _check(tmp_path, monkeypatch, text)


def _libyaml_entries(data: bytes) -> list[Node]:
    composer = Loader(io.BytesIO(data))  # type: ignore[arg-type]
    try:
        root = composer.document(lambda pairs, key: None)
    finally:
        composer.dispose()
    assert isinstance(root, MappingNode)
    return list(root.value[-1][1].value)


def _marks(node: Node) -> list[tuple[int, int, int]]:
    marks = [(mark.index, mark.line, mark.column) for mark in (node.start_mark, node.end_mark)]
    if not isinstance(node, ScalarNode):
        for entry in node.value:
            for child in entry if isinstance(entry, tuple) else (entry,):
                marks.extend(_marks(child))
    return marks


@pytest.mark.parametrize("start", ["", "\ufeff", "# é\n"], ids=["ASCII", "a BOM", "non-ASCII"])
def test_composed_entries_have_libyaml_s_marks_after_any_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: str
) -> None:
    data = f"{start}{HEAD}  - {{id: 'r1', factory: fac-1}}\n  - {{id: 'r2', factory: fac-2}}\n"
    path = tmp_path / "m.yaml"
    path.write_bytes(data.encode())
    composed: list[Node] = []
    entry_node = flowlines.entry_node

    def spy(*args: Any) -> Any:
        composed.append(entry_node(*args))
        return composed[-1]

    monkeypatch.setattr(flowlines, "entry_node", spy)
    load_manifest(path, environ={})
    expected = _libyaml_entries(data.encode())
    assert [_marks(node) for node in composed] == [_marks(node) for node in expected]


# Lines that the pair and frame patterns once read in time quadratic in their length (a findall
# that tried every start inside a long word; "(.*)}" that tried every "}" of a comment to its
# end): 16,000 letters took 2 s, 16,000 " #}" 22 s. Speed is measured, not asserted here: these
# only check that the lines are still not split into plain pairs.
LONG_LINES = {
    "a long word": "  - {" + "a" * 50_000 + "}\n",
    "a long quoted word": "  - {k: '" + "a" * 50_000 + "'}\n",
    "braces in a comment": "  - {k: v}" + " #}" * 20_000 + "\x01\n",
}


@pytest.mark.parametrize("line", LONG_LINES.values(), ids=LONG_LINES.keys())
def test_a_long_line_of_no_plain_pairs_is_not_split(line: str) -> None:
    assert flowlines.plain_pairs(line) is None


def test_an_entry_with_a_brace_in_its_comment_splits_as_libyaml_composes_it() -> None:
    line = "  - {id: r1, factory: fac-1, parameters: {p: 1}}  # } {q: 2}, more\n"
    split = flowlines.plain_pairs(line)
    assert split is not None
    column, pairs = split
    (entry,) = _libyaml_entries(f"{HEAD}{line}".encode())
    assert isinstance(entry, MappingNode)
    assert column - 1 == entry.start_mark.column
    texts = [line[value.start_mark.column : value.end_mark.column] for _, value in entry.value]
    assert [(key, text) for key, text, _ in pairs] == [
        (key.value, text) for (key, _), text in zip(entry.value, texts, strict=True)
    ]
