"""YAML nodes with positions, composed one top-level entry at a time.

:class:`Loader` composes the node graph from the parser's events (libyaml when available) like
PyYAML's composer, except that the items of one top-level sequence can be handed over one at a
time as they are composed, so a 100,000-run manifest never holds more than one run's nodes.
Anchored nodes stay in the loader's ``anchors`` map, as in PyYAML, so aliases keep working.
Valid YAML that batchrun does not read stops the composer at its position (:class:`NotSupported`):
a tag with no JSON type (``!!set``, ``!!python/...``, local tags), or lists and mappings nested
past :data:`~batchrun.manifest.limits.MAX_YAML_NESTING`.
"""

from __future__ import annotations

import functools
import gc
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from yaml.composer import ComposerError
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
from yaml.resolver import Resolver

from batchrun.manifest.limits import MAX_NESTING, MAX_YAML_NESTING

if TYPE_CHECKING:
    from yaml.error import Mark

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
                    key = _key(event) if plain else compose(event)
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


def _key(event: Any) -> ScalarNode:
    # keys repeat in every run (parameter names above all) and some end up in each run's
    # parameters: one shared string each, not 100,000 copies
    node = _scalar(event)
    node.value = sys.intern(node.value)
    return node


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


def short_tag(tag: str) -> str:
    """A tag as YAML spells it: ``!!set``, ``!!python/tuple``, ``!local``."""
    return tag.replace("tag:yaml.org,2002:", "!!")
