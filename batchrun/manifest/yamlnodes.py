"""YAML nodes with positions: composing them one top-level entry at a time, and reporting on them.

:class:`Loader` composes the node graph from the parser's events (libyaml when available) like
PyYAML's composer, except that the items of one top-level sequence can be handed over one at a
time as they are composed, so a 100,000-run manifest never holds more than one run's nodes.
Anchored nodes stay in the loader's ``anchors`` map, as in PyYAML, so aliases keep working.

:class:`NodeReader` collects issues at nodes' positions and reads mappings: ``<<`` merge keys,
and duplicate, unknown or non-string keys reported.
"""

from __future__ import annotations

import difflib
import functools
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import yaml
from yaml.composer import ComposerError
from yaml.error import Mark
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError
from yaml.resolver import Resolver

from batchrun.errors import ManifestIssue
from batchrun.manifest.limits import MAX_NESTING, MAX_YAML_NESTING
from batchrun.manifest.scalars import SUSPECT_START, misread_text

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

STR, INT, FLOAT, BOOL, NULL, TIMESTAMP, MERGE, SEQ, MAP, BINARY = (
    f"tag:yaml.org,2002:{name}"
    for name in (
        "str", "int", "float", "bool", "null", "timestamp", "merge", "seq", "map", "binary"
    )
)  # fmt: skip
# The tags a manifest may spell out: the ones the readers can describe. Others (!!set, !!omap,
# !!python/..., local !tags) mean a type that JSON and batchrun do not have.
_SUPPORTED: Final = frozenset((STR, INT, FLOAT, BOOL, NULL, TIMESTAMP, MERGE, SEQ, MAP, BINARY))
_KINDS: Final = {STR: "the string", INT: "the integer", FLOAT: "the number"}
_KINDS.update({BOOL: "the boolean", TIMESTAMP: "the date"})
INVALID: Final[Any] = object()  # a value that was present but wrong, and has been reported

Pair = tuple[Node, Node]
ItemSink = Callable[[Node], None]
# Given the root mapping's pairs so far and the key of a sequence about to be composed: a sink
# to hand its items to one at a time, or None to compose the sequence whole.
Streams = Callable[[list[Pair], Node], ItemSink | None]

_IMPLICIT_TAGS: Final = Resolver()  # the implicit tag rules both safe loaders use
_CLAIMED: Final = frozenset(first for first in Resolver.yaml_implicit_resolvers if first)


def resolve(kind: type[Node], value: str | None, implicit: Any) -> str:
    """The tag PyYAML's safe loaders give an untagged node."""
    if kind is not ScalarNode:
        return MAP if kind is MappingNode else SEQ
    if not implicit[0] or (value and value[0] not in _CLAIMED):
        return STR  # quoted, or plain with a first character no implicit rule claims
    if value and value.isdecimal() and value.isascii() and (value[0] != "0" or value == "0"):
        return INT  # as YAML 1.1's decimal integers: numbers rarely repeat, so not cached
    return _resolve_claimed(value, implicit)


@functools.lru_cache(maxsize=4096)
def _resolve_claimed(value: str | None, implicit: Any) -> str:
    # The implicit rules are regular expressions; keys and names repeat, so cached.
    tag: str = _IMPLICIT_TAGS.resolve(ScalarNode, value, implicit)  # type: ignore[no-untyped-call]
    return tag


class NotSupported(ComposerError):
    """Valid YAML that batchrun does not read: a tag it has no type for, or nesting too deep."""

    def __init__(self, problem: str, mark: Mark) -> None:
        super().__init__(None, None, problem, mark)


def _unsupported_tag(tag: str, mark: Mark) -> NotSupported:
    problem = (
        f"unsupported tag {short_tag(tag)}: a manifest holds text, numbers, true/false, null,"
        " lists and mappings; remove the tag"
    )
    return NotSupported(problem, mark)


class Loader(_BaseLoader):
    """The safe loader's parser, composed here: PyYAML's composer, plus streaming of one list."""

    def __init__(self, stream: bytes) -> None:
        super().__init__(stream)
        self.anchors: dict[str, Node] = {}
        self.depth = 0  # lists and mappings open around the node being composed

    def document(self, streams: Streams) -> Node | None:
        """Compose the stream's single document; ``streams`` may take a root sequence's items."""
        self.get_event()  # stream start
        root: Node | None = None
        if not self.check_event(StreamEndEvent):
            self.get_event()  # document start
            event: Any = self.peek_event()
            if type(event) is MappingStartEvent and event.anchor is None:
                root = self._root(streams)
            else:
                root = self.compose()
            self.get_event()  # document end
        if not self.check_event(StreamEndEvent):
            event = self.get_event()  # the next document's start
            raise ComposerError(
                "expected a single document in the stream",
                root.start_mark if root else None,
                "but found another document",
                event.start_mark,
            )
        return root

    def _root(self, streams: Streams) -> MappingNode:
        start: Any = self.get_event()
        node = MappingNode(_tag(start, MAP), [], start.start_mark, None, start.flow_style)
        pairs: list[Pair] = node.value
        self.depth = 1
        while not self.check_event(MappingEndEvent):
            key = self.compose()
            event: Any = self.peek_event()
            sink = None
            if type(event) is SequenceStartEvent and event.anchor is None:
                sink = streams(pairs, key)
            if sink is None:
                pairs.append((key, self.compose()))
                continue
            self.get_event()
            items = SequenceNode(_tag(event, SEQ), [], event.start_mark, None, event.flow_style)
            self.depth = 2
            while not self.check_event(SequenceEndEvent):
                sink(self.compose())
            self.depth = 1
            items.end_mark = self._end_mark()
            pairs.append((key, items))  # without its items, which the sink has taken
        node.end_mark = self._end_mark()
        return node

    def _end_mark(self) -> Any:
        return self.get_event().end_mark  # type: ignore[union-attr]

    def compose(self) -> Node:
        """The next node, as PyYAML's composer builds it (with libyaml's messages)."""
        return self._node(self.get_event())

    def _node(self, event: Any) -> Node:
        kind = type(event)
        anchors = self.anchors
        if kind is AliasEvent:
            if event.anchor not in anchors:
                raise ComposerError(None, None, "found undefined alias", event.start_mark)
            return anchors[event.anchor]
        anchor = event.anchor
        if anchor is not None and anchor in anchors:
            raise ComposerError(
                "found duplicate anchor; first occurrence",
                anchors[anchor].start_mark,
                "second occurrence",
                event.start_mark,
            )
        node: Node
        if kind is ScalarEvent:
            node = _scalar(event)
        else:
            # The loops below are the hot path: a scalar without an anchor is built inline.
            get, compose = self.get_event, self._node
            start, end = event.start_mark, event.end_mark
            self.depth += 1
            if self.depth > MAX_YAML_NESTING:
                raise NotSupported(
                    f"lists and mappings nested more than {MAX_YAML_NESTING} deep: batchrun reads"
                    f" at most {MAX_YAML_NESTING} levels (parameters at most {MAX_NESTING})",
                    start,
                )
            if kind is SequenceStartEvent:
                node = SequenceNode(_tag(event, SEQ), [], start, end, event.flow_style)
                if anchor is not None:
                    anchors[anchor] = node  # before the items, which may refer to it
                items = node.value
                while (kind := type(event := get())) is not SequenceEndEvent:
                    plain = kind is ScalarEvent and event.anchor is None
                    items.append(_scalar(event) if plain else compose(event))
            else:
                node = MappingNode(_tag(event, MAP), [], start, end, event.flow_style)
                if anchor is not None:
                    anchors[anchor] = node
                pairs = node.value
                while (kind := type(event := get())) is not MappingEndEvent:
                    plain = kind is ScalarEvent and event.anchor is None
                    key = _scalar(event) if plain else compose(event)
                    event = get()
                    plain = type(event) is ScalarEvent and event.anchor is None
                    pairs.append((key, _scalar(event) if plain else compose(event)))
            node.end_mark = event.end_mark
            self.depth -= 1
        if anchor is not None:
            anchors[anchor] = node
        return node


def _scalar(event: Any) -> ScalarNode:
    tag, value = event.tag, event.value
    if tag is None or tag == "!":
        implicit = event.implicit
        plain_text = not implicit[0] or (value and value[0] not in _CLAIMED)
        tag = STR if plain_text else resolve(ScalarNode, value, implicit)
    elif tag not in _SUPPORTED:
        raise _unsupported_tag(tag, event.start_mark)
    return ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)


def _tag(event: Any, implicit: str) -> str:
    tag: str | None = event.tag
    if tag is None or tag == "!":
        return implicit
    if tag not in _SUPPORTED:
        raise _unsupported_tag(tag, event.start_mark)
    return tag


@contextmanager
def gc_paused() -> Iterator[None]:
    # Building a big manifest's runs allocates hundreds of thousands of container objects in a
    # burst, which would trigger ever larger full collections that find no garbage.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
            close = difflib.get_close_matches(key, allowed or (), n=1)
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


def short_tag(tag: str) -> str:
    """A tag as YAML spells it: ``!!set``, ``!!python/tuple``, ``!local``."""
    return tag.replace("tag:yaml.org,2002:", "!!")


def join(where: str, key: str | int) -> str:
    """The path of ``key`` under ``where``: ``runs[0]``, ``runs[0].factory``."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key
