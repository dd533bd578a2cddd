"""Reading YAML nodes with their positions: issues at nodes, mappings, and what nodes are.

:class:`NodeReader` collects errors and warnings at nodes' positions and reads mappings: ``<<``
merge keys, and duplicate, unknown or non-string keys reported. The manifest's field reader and
the scope file reader build on it, so both read YAML by the same rules and say so alike.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, Final

import yaml
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from batchrun.errors import ManifestIssue
from batchrun.manifest.limits import MAX_NESTING
from batchrun.manifest.scalars import SUSPECT_START, misread_text
from batchrun.manifest.yamlnodes import (
    BOOL,
    FLOAT,
    INT,
    MERGE,
    NULL,
    STR,
    TIMESTAMP,
    NotSupported,
    Pair,
    short_tag,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["CLOSE_ENOUGH", "INVALID", "NodeReader", "describe_node", "join", "offset_mark"]

_KINDS: Final = {STR: "the string", INT: "the integer", FLOAT: "the number"}
_KINDS.update({BOOL: "the boolean", TIMESTAMP: "the date"})
# how alike an unknown key must be to a known one to be suggested: above difflib's 0.6, which
# offers 'dates' for the parameter 'run_date' (misplaced under the run, not misspelt)
CLOSE_ENOUGH: Final = 0.7
INVALID: Final[Any] = object()  # a value that was present but wrong, and has been reported


class NodeReader:
    """Reads one file's nodes, collecting errors and warnings at their positions."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[ManifestIssue] = []
        self.warnings: list[ManifestIssue] = []
        self.active: set[int] = set()  # collections being walked: stops recursive aliases

    def error(self, node: Node, path: str, message: str) -> Any:
        """Report an error at ``node``; returns INVALID, to be returned for the value."""
        self.issue(self.errors, node.start_mark, path, message)
        return INVALID

    def issue(self, into: list[ManifestIssue], mark: Mark, path: str, message: str) -> None:
        into.append(ManifestIssue(self.file, mark.line + 1, mark.column + 1, path, message))

    def text(self, node: Node, path: str, expected: str) -> Any:
        """The text of a string scalar, before substitution; INVALID after reporting a value of
        another type, or plain text that YAML 1.2 tools would read as something else."""
        if not isinstance(node, ScalarNode) or node.tag != STR:
            hint = ""
            if isinstance(node, ScalarNode) and node.tag != NULL:
                hint = f"; quote it ('{node.value}') if it is meant as text"
            return self.error(node, path, f"expected {expected}, got {describe_node(node)}{hint}")
        text: str = node.value
        if not node.style and text[:1] in SUSPECT_START and (problem := misread_text(text)):
            return self.error(node, path, problem)
        return text

    def pairs(self, node: Node, where: str, allowed: frozenset[str] | None) -> dict[str, Pair]:
        """The mapping's pairs by key, after ``<<`` merges; duplicate and unknown keys reported."""
        pairs: dict[str, Pair] = {}
        merged: list[dict[str, Pair]] = []
        for pair in node.value:
            key_node = pair[0]
            key = key_node.value
            if (
                key_node.tag == STR
                and isinstance(key_node, ScalarNode)
                and key not in pairs
                and (allowed is None or key in allowed)
            ):
                pairs[key] = pair
            elif key_node.tag == MERGE:
                merged.extend(self._merge(pair[1], where, allowed))
            else:
                self._bad_key(key_node, where, pairs, allowed)
        for source in merged:
            for key, pair in source.items():
                pairs.setdefault(key, pair)
        return pairs

    def _bad_key(
        self, node: Node, where: str, pairs: dict[str, Pair], allowed: frozenset[str] | None
    ) -> None:
        key = node.value
        if not isinstance(node, ScalarNode) or node.tag != STR:
            hint = f": quote it ('{key}')" if isinstance(node, ScalarNode) else ""
            self.error(node, where, f"keys must be strings, got {describe_node(node)}{hint}")
        elif key in pairs:
            mark = pairs[key][0].start_mark
            first = f"first at line {mark.line + 1}, column {mark.column + 1}"
            message = f"duplicate key {key!r} ({first}): YAML would keep only the last one"
            self.error(node, join(where, key), message)
        else:
            close = difflib.get_close_matches(key, allowed or (), n=1, cutoff=CLOSE_ENOUGH)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else f"expected {', '.join(sorted(allowed or ()))}"
            )
            self.error(node, join(where, key), f"unknown key {key!r}: {hint}")

    def _merge(
        self, node: Node, where: str, allowed: frozenset[str] | None
    ) -> Iterator[dict[str, Pair]]:
        for source in node.value if isinstance(node, SequenceNode) else [node]:
            if not isinstance(source, MappingNode):
                self.error(source, where, f"'<<' merges mappings, got {describe_node(source)}")
            elif id(source) in self.active:
                self.error(source, where, "this mapping merges itself (through an alias)")
            elif len(self.active) >= MAX_NESTING:
                message = f"'<<' merges nested more than {MAX_NESTING} deep (through aliases)"
                self.error(source, where, message)
            else:
                self.active.add(id(source))
                yield self.pairs(source, where, allowed)
                self.active.discard(id(source))

    def yaml_issue(self, exc: yaml.YAMLError, data: bytes) -> ManifestIssue:
        """The parser's or composer's error as an issue, with a hint for the usual causes."""
        if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
            parts = [exc.context or "", exc.problem or ""]
            if exc.context and exc.context_mark is not None:
                context = exc.context_mark
                parts[0] += f" at line {context.line + 1}, column {context.column + 1}"
            mark = exc.problem_mark
            message = ", ".join(part for part in parts if part)
            if not isinstance(exc, NotSupported):
                message = "invalid YAML: " + message
            text = [*data.split(b"\n"), b""][mark.line]
            if text[mark.column : mark.column + 1] == b"\t":
                message += " (a tab: YAML is indented with spaces)"
            elif b"${" in text and "flow" in message:
                message += " (inside [ ] or { }, quote a value that holds ${...})"
            return ManifestIssue(self.file, mark.line + 1, mark.column + 1, "", message)
        if isinstance(exc, ReaderError):
            line = data.count(b"\n", 0, exc.position) + 1
            column = exc.position - data.rfind(b"\n", 0, exc.position)
            message = f"invalid YAML: {exc.reason} (a manifest is UTF-8 text)"
            return ManifestIssue(self.file, line, column, "", message)
        return ManifestIssue(self.file, 0, 0, "", f"invalid YAML: {exc}")


def offset_mark(node: ScalarNode, offset: int) -> Mark:
    """Where ``offset`` into a scalar's text is in the file, when a one-line scalar allows."""
    start, end = node.start_mark, node.end_mark
    width = end.column - start.column if start.line == end.line else -1
    if node.style in ("'", '"') and width == len(node.value) + 2:
        offset += 1
    elif node.style or width != len(node.value):  # plain is None, or "" from libyaml
        return start
    return Mark(start.name, start.index + offset, start.line, start.column + offset, None, 0)


def describe_node(node: Node) -> str:
    """What the node is, for messages: "a list", "the integer 5", "an empty value (null)"."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == NULL:
        return "an empty value (null)"
    kind = _KINDS.get(node.tag)
    if kind is None:
        return f"a value tagged {short_tag(node.tag)}"
    return f"{kind} {node.value!r}" if node.tag == STR else f"{kind} {node.value}"


def join(where: str, key: str | int) -> str:
    """The path of ``key`` under ``where``: ``runs[0]``, ``runs[0].factory``."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key
