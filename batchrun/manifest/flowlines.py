"""Run entries written one flow mapping a line, read without libyaml.

A generated manifest writes each run on one line: ``  - {id: r1, factory: f, parameters: {p: 1}}``.
PyYAML's libyaml binding builds a Python event or node and two marks for every scalar, which was
most of a 100,000-run manifest's read. Here such lines are read with regular expressions:
:func:`plain_pairs` splits a line of plain scalars into its keys and value texts, so that values
read before need no node at all (:meth:`~batchrun.manifest.fields.FieldReader.plain_fields`);
:func:`entry_node` and :func:`value_node` build the nodes libyaml's composer would build (the
same tags, by the same rules, the same values, styles and marks) for what must be read from one.

It reads only what it can read exactly: plain scalars of a safe alphabet (letters, digits and
``_ . + / ( ) @ -``, not starting with ``)``, ``@`` or a lone ``-``), quoted scalars of
printable ASCII without escapes, and flat lists and mappings of those inside an entry. The head
of the file (up to its ``runs:`` line) is left to libyaml. A line it cannot read ends the reading
(:class:`NotOneLine`): the caller reads the whole file with libyaml instead.
"""

from __future__ import annotations

import re
import sys
from itertools import chain
from typing import TYPE_CHECKING, Any, BinaryIO, Final

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from batchrun.manifest.yamlnodes import MAP, PLAIN, SEQ, STR, resolve

if TYPE_CHECKING:
    from collections.abc import Iterator

try:
    from yaml._yaml import Mark
except ImportError:  # PyYAML built without libyaml
    from yaml.error import Mark  # type: ignore[assignment]

__all__ = [
    "LONGEST_KEY",
    "RUNS_LINE",
    "NotOneLine",
    "entry_lines",
    "entry_node",
    "head",
    "plain_pairs",
    "value_node",
]

RUNS_LINE: Final = b"runs:\n"
# a head longer than this is not a generated manifest's: libyaml reads the file
_LONGEST_HEAD: Final = 1 << 16
# libyaml's line breaks besides "\n": a head holding one counts its lines otherwise
_OTHER_BREAKS: Final = re.compile("[\r\x85\u2028\u2029]")

_PLAIN_CHAR = r"[\w.+/()@-]"
_PLAIN = rf"(?:-?[\w.+/(]{_PLAIN_CHAR}*(?: +{_PLAIN_CHAR}+)*)"
_SCALAR = rf"(?:{_PLAIN}|\"[ !#-\[\]-~]*\"|'[ -&(-~]*')"
_KEY = rf"(?:{_SCALAR})"
# libyaml takes a longer key for no key at all: entry_node checks each key, plain_pairs the line
LONGEST_KEY: Final = 1000
_FLAT = rf"(?:{_SCALAR}|\{{(?:{_KEY}: {_SCALAR}(?:, {_KEY}: {_SCALAR})*)?\}}"
_FLAT += rf"|\[(?:{_SCALAR}(?:, {_SCALAR})*)?\])"
_TRAILER = r"(?: +(?:#[\t -~]*)?)?\n?"  # spaces, a comment
_ENTRY: Final = re.compile(
    rf" *- \{{({_KEY}: {_FLAT}(?:, {_KEY}: {_FLAT})*)\}}{_TRAILER}", re.ASCII
)
# no "#" before the entry's "}": "(.*)" would try each "}" of a comment, each to its end
_FRAME: Final = re.compile(rf" *- \{{([^#\n]*)\}}{_TRAILER}", re.ASCII)
# plain_pairs: a key as an identifier, a plain scalar, or a flat list or mapping of them
_IDENTIFIER = r"[A-Za-z_]\w*"
_PLAIN_FLAT = rf"{_PLAIN}|\{{(?:{_IDENTIFIER}: {_PLAIN}(?:, {_IDENTIFIER}: {_PLAIN})*)?\}}"
_PLAIN_FLAT += rf"|\[(?:{_PLAIN}(?:, {_PLAIN})*)?\]"
# a pair starts after the "{" or a ", ": findall tries no other start inside a long word, which
# would cost the rest of the word each time
_PLAIN_PAIR: Final = re.compile(rf"(?<=[{{ ])({_IDENTIFIER}): ({_PLAIN_FLAT})(, |\Z)", re.ASCII)
_PAIR: Final = re.compile(rf"({_KEY}): ({_FLAT})", re.ASCII)
_SCALARS: Final = re.compile(_SCALAR, re.ASCII)
_SCALAR_PAIR: Final = re.compile(rf"({_KEY}): ({_SCALAR})", re.ASCII)
_NOTHING: Final = re.compile(r" *(?:#[\t -~]*)?\n?", re.ASCII)  # a blank or comment line


class NotOneLine(Exception):
    """A line that this module cannot read exactly: the file is libyaml's to read."""


def head(stream: BinaryIO) -> bytes | None:
    """The file's lines up to and with its first ``runs:`` line (with no indent); None when
    there is none near the top, or the head counts its lines otherwise than by ``\\n``."""
    lines: list[bytes] = []
    size = 0
    for line in stream:
        lines.append(line)
        size += len(line)
        if line == RUNS_LINE:
            text = b"".join(lines)
            try:
                decoded = text.decode("utf-8")
            except UnicodeDecodeError:
                return None
            return None if _OTHER_BREAKS.search(decoded) else text
        if size > _LONGEST_HEAD:
            return None
    return None


def entry_lines(stream: BinaryIO, line: int, index: int) -> Iterator[tuple[str, int, int]]:
    """The lines after the head that hold an entry (``- {``), each with its 0-based line and
    the character index where it starts; ``line`` and ``index`` are the first line's. Raises
    :class:`NotOneLine` at the first line that is not an entry, a blank or a comment."""
    indent = -1
    for raw in stream:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise NotOneLine from None
        entry = text.lstrip(" ")
        if entry.startswith("- {"):
            if indent != len(text) - len(entry):
                if indent >= 0:
                    raise NotOneLine  # a list's entries are indented alike
                indent = len(text) - len(entry)
            yield text, line, index
        elif _NOTHING.fullmatch(entry) is None:
            raise NotOneLine
        line += 1
        index += len(text)


def plain_pairs(text: str) -> tuple[int, list[tuple[str, str, str]]] | None:
    """An entry line of plain scalars only, and flat lists and mappings of them: the column
    where its pairs start, and each pair's key, value text and the ``", "`` after it (none
    after the last, unless the entry ends in one: ``{a: b, }``, which YAML reads as ``{a: b}``);
    None for any other line."""
    first = text.find("{") + 1
    if text.endswith("}\n") and text[: first - 1].lstrip(" ") == "- ":
        end = len(text) - 2  # the usual line: no comment, no spaces after the entry
    else:
        frame = _FRAME.fullmatch(text)
        if frame is None:
            return None
        first, end = frame.span(1)
    pairs = _PLAIN_PAIR.findall(text, first, end)
    # the pairs are found one after another; they are the whole entry only if their lengths
    # add up to it (else findall skipped what it could not read)
    length = sum(map(len, chain.from_iterable(pairs))) + 2 * len(pairs)  # and each ": "
    if length != end - first or not pairs or length > LONGEST_KEY:
        return None  # (a line that long may hold a key too long for libyaml: entry_node's)
    return first, pairs


def entry_node(text: str, name: str, line: int, index: int) -> MappingNode:
    """The entry of a line as libyaml composes it; raises :class:`NotOneLine` for a line this
    module cannot read exactly."""
    match = _ENTRY.fullmatch(text)
    if match is None:
        raise NotOneLine
    start, stop = match.start(1) - 1, match.end(1) + 1
    pairs: list[tuple[Node, Node]] = []
    for pair in _PAIR.finditer(text, start + 1, stop - 1):
        key = _key(text, pair.start(1), pair.end(1), name, line, index)
        pairs.append((key, value_node(text, pair.start(2), pair.end(2), name, line, index)))
    node = MappingNode(MAP, pairs, _mark(name, line, index, start), None, True)
    node.end_mark = _mark(name, line, index, stop)
    return node


def value_node(text: str, first: int, end: int, name: str, line: int, index: int) -> Node:
    """The node of a value that :func:`entry_node` or :func:`plain_pairs` read at
    ``text[first:end]``: a scalar, or a flat list or mapping."""
    opening = text[first]
    if opening == "{":
        pairs: list[tuple[Node, Node]] = []
        for pair in _SCALAR_PAIR.finditer(text, first + 1, end - 1):
            key = _key(text, pair.start(1), pair.end(1), name, line, index)
            pairs.append((key, _scalar(text, pair.start(2), pair.end(2), name, line, index)))
        node: Node = MappingNode(MAP, pairs, _mark(name, line, index, first), None, True)
    elif opening == "[":
        items = [
            _scalar(text, item.start(), item.end(), name, line, index)
            for item in _SCALARS.finditer(text, first + 1, end - 1)
        ]
        node = SequenceNode(SEQ, items, _mark(name, line, index, first), None, True)
    else:
        return _scalar(text, first, end, name, line, index)
    node.end_mark = _mark(name, line, index, end)
    return node


def _key(text: str, first: int, end: int, name: str, line: int, index: int) -> ScalarNode:
    if end - first > LONGEST_KEY:
        raise NotOneLine
    key = _scalar(text, first, end, name, line, index)
    key.value = sys.intern(key.value)  # as yamlnodes interns libyaml's keys
    return key


def _scalar(text: str, first: int, end: int, name: str, line: int, index: int) -> ScalarNode:
    quote = text[first]
    if quote == '"' or quote == "'":
        value, tag, style = text[first + 1 : end - 1], STR, quote
    else:
        value, style = text[first:end], ""
        tag = resolve(ScalarNode, value, PLAIN)
    start, stop = _mark(name, line, index, first), _mark(name, line, index, end)
    return ScalarNode(tag, value, start, stop, style)


def _mark(name: str, line: int, index: int, column: int) -> Any:
    return Mark(name, index + column, line, column, None, None)
