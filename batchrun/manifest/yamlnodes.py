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
from typing import TYPE_CHECKING, Any, BinaryIO, Final

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
# the first characters of plain scalars that an implicit rule may tag other than as text
CLAIMED: Final = frozenset(first for first in Resolver.yaml_implicit_resolvers if first)


PLAIN: Final = (True, False)  # the implicit flags libyaml gives a plain scalar


def resolve(kind: type[Node], value: str | None, implicit: Any) -> str:
    """The tag PyYAML's safe loaders give an untagged node."""
    if kind is not ScalarNode:
        return MAP if kind is MappingNode else SEQ
    if not implicit[0] or (value and value[0] not in CLAIMED):
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
    """The safe loader's parser, composed here: PyYAML's composer, plus streaming of one list.

    A document without tags or anchors (no ``!`` and no ``&`` anywhere in it: most manifests)
    is composed by libyaml's own composer, in C, which builds nodes without building the events
    first (a third less time for 100,000 runs); the hooks it calls on the way down and up
    (``descend_resolver``/``ascend_resolver``) hand the streamed list's items over, keep the
    nesting bound and intern mapping keys. Any other document is composed here, event by event.
    """

    def __init__(self, stream: bytes, *, in_c: bool | None = None) -> None:
        """``in_c``: compose in C (only right for a plain document), or event by event; by
        default, in C when the document is plain. ``stream`` may be a binary file as well, as
        for PyYAML's loaders (which are typed for text only)."""
        self.in_c = _plain_document(stream) if in_c is None else in_c
        super().__init__(stream)
        self.anchors: dict[str, Node] = {}
        self.depth = 0  # lists and mappings open around the node being composed
        # composing in C: the parent of the node before, and its depth (lists and mappings
        # around it, and itself); each list and mapping keeps its own in ``node.depth``
        self._current: Node | None = None
        self._depth = 0
        self._watch = True  # the current parent needs _descend for every node in it
        self._streams: Streams | None = None
        self._root_node: Node | None = None
        self._root_key: Any = None  # the key whose value is being composed in the root
        self._offered: Node | None = None  # the last of the root's lists offered to _streams
        self._streamed: Node | None = None  # the root's list whose items go to _sink
        self._sink: ItemSink | None = None
        self._frontier: Node | None = None  # a collection at the deepest level allowed
        self._checked = 0  # how many of the frontier's entries were checked

    def document(self, streams: Streams) -> Node | None:
        """Compose the stream's single document; ``streams`` may take a root sequence's items."""
        if self.in_c:
            return self._document_in_c(streams)
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

    def _document_in_c(self, streams: Streams) -> Node | None:
        self._streams = streams
        # libyaml's composer asks these for every node: the tag (no wrapper around the rules),
        # and after each node nothing (a C builtin called with no arguments: the bookkeeping is
        # done in descend_resolver, on the next node, where the parent changes)
        self.resolve = resolve  # type: ignore[method-assign]
        self.ascend_resolver = tuple  # type: ignore[assignment,method-assign]
        root: Node | None = self.get_single_node()
        if root is not None:
            self._moved(root, 0)  # what ended with the document: the streamed list, the frontier
        return root

    def descend_resolver(self, parent: Node | None, index: Any) -> None:
        """Called by libyaml's composer before it composes each node, with the node's parent
        and its index there (the key node, for a mapping's value)."""
        if parent is not self._current or self._watch:
            self._descend(parent, index)
        if type(index) is ScalarNode:
            # keys repeat in every run and some end up in each run's parameters (see _key)
            index.value = sys.intern(index.value)

    def _descend(self, parent: Node | None, index: Any) -> None:
        """A node in another parent than the node before, or in one that is watched: the root
        mapping, the streamed list, the frontier (a collection at the deepest level allowed)."""
        if parent is None:
            return  # the root itself
        depth: int | None = parent.__dict__.get("depth")
        if depth is None:  # a new list or mapping: a child of the node before's parent
            depth = parent.depth = self._depth + 1  # type: ignore[attr-defined]
            if depth > MAX_YAML_NESTING:
                raise _too_deep(parent.start_mark)
        elif depth < self._depth:
            self._moved(parent, depth)  # back up: the nodes in between are whole
        self._current, self._depth = parent, depth
        if depth == 1:
            self._root_key = index  # None while a key is composed, then the key node
            self._offer_empty(parent)
        elif parent is self._streamed:
            if index:  # the item before this one is whole: hand it over
                self._hand_over()
        elif depth == 2 and index == 0 and self._streamed is None:
            self._offer(parent)
        if depth == MAX_YAML_NESTING:
            if parent is not self._frontier:
                self._frontier, self._checked = parent, 0
            self._check_frontier(index)
        self._watch = depth <= 2 or parent is self._frontier

    def _moved(self, parent: Node, depth: int) -> None:
        """Composition went back up to ``parent``, at ``depth``: what ended below is whole."""
        if depth < 2 and self._streamed is not None:
            self._hand_over()  # the streamed list is whole: its last item goes too
            self._streamed = self._sink = None
        if depth < 1:
            self._offer_empty(parent)
        if self._frontier is not None and depth < MAX_YAML_NESTING:
            self._check_frontier(None)
            self._frontier = None

    def _offer(self, items: Node) -> None:
        """Offer a list that is a value of the root mapping to ``streams``, at its first item,
        as :meth:`_root` does."""
        root, key, streams = self._root_node, self._root_key, self._streams
        self._offered = items
        if type(items) is SequenceNode and isinstance(key, Node) and streams is not None:
            sink = streams(root.value, key) if type(root) is MappingNode else None
            if sink is not None:
                self._streamed, self._sink = items, sink

    def _offer_empty(self, root: Node) -> None:
        """An empty list that is a value of the root mapping is offered too, as :meth:`_root`
        offers it, once it is whole (it has no first item)."""
        self._root_node = root
        pairs = root.value
        if type(root) is not MappingNode or not pairs:
            return
        key, items = pairs[-1]
        if type(items) is SequenceNode and not items.value and items is not self._offered:
            self._offered = items
            if self._streams is not None:
                self._streams(pairs[:-1], key)

    def _hand_over(self) -> None:
        items, sink = self._streamed, self._sink
        assert items is not None and sink is not None, "only while streaming"
        while items.value:
            sink(items.value.pop())

    def _check_frontier(self, key: Any) -> None:
        """A list or mapping in the frontier (a collection at the deepest level allowed) is one
        level too deep: one with items is stopped at its first item, an empty one here, once it
        is in the frontier (or, as a key, before its value is composed)."""
        frontier = self._frontier
        assert frontier is not None, "only in a frontier"
        entries: list[Any] = frontier.value
        for entry in entries[self._checked :]:
            for node in entry if type(entry) is tuple else (entry,):
                if type(node) is not ScalarNode:
                    raise _too_deep(node.start_mark)
        self._checked = len(entries)
        if isinstance(key, Node) and type(key) is not ScalarNode:
            raise _too_deep(key.start_mark)

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
                raise _too_deep(start)
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


def _too_deep(mark: Mark) -> NotSupported:
    return NotSupported(
        f"lists and mappings nested more than {MAX_YAML_NESTING} deep: batchrun reads"
        f" at most {MAX_YAML_NESTING} levels (parameters at most {MAX_NESTING})",
        mark,
    )


def _plain_document(stream: bytes | BinaryIO, chunk: int = 1 << 20) -> bool:
    """Whether the document has no ``!`` and no ``&`` anywhere: then it has no tag (which
    batchrun checks) and no anchor (which would keep a list alive for its aliases), so
    libyaml's composer builds the same nodes as this module's. A stream is rewound after."""
    if isinstance(stream, bytes | str):
        text = stream.encode() if isinstance(stream, str) else stream
        return b"!" not in text and b"&" not in text
    try:
        start = stream.tell()
    except (AttributeError, OSError):
        return False
    plain = True
    while plain and (block := stream.read(chunk)):
        plain = b"!" not in block and b"&" not in block
    stream.seek(start)
    return plain


def _scalar(event: Any) -> ScalarNode:
    tag, value = event.tag, event.value
    if tag is None or tag == "!":
        implicit = event.implicit
        plain_text = not implicit[0] or (value and value[0] not in CLAIMED)
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
