"""libyaml's composer (a document with no ``!`` and no ``&``) builds the same nodes as the
event-by-event composer: tags, values, styles, positions, the streamed list's items and what
``streams`` was offered, and the same errors at the same places."""

from __future__ import annotations

import io
from typing import Any

import pytest
import yaml
from yaml.nodes import Node, ScalarNode

from batchrun.manifest.limits import MAX_YAML_NESTING
from batchrun.manifest.yamlnodes import ItemSink, Loader, Pair
from tests.helpers.paths import DATA

DEEP = MAX_YAML_NESTING


def _flat(node: Node | None, into: list[Any]) -> list[Any]:
    if node is None:
        into.append(None)
        return into
    start, end = node.start_mark, node.end_mark
    head = (type(node).__name__, node.tag, (start.index, start.line, start.column))
    into.append((*head, (end.index, end.line, end.column), getattr(node, "style", None)))
    if isinstance(node, ScalarNode):
        into.append(node.value)
        return into
    into.append((getattr(node, "flow_style", None), len(node.value)))
    for entry in node.value:
        for child in entry if isinstance(entry, tuple) else (entry,):
            _flat(child, into)
    return into


def _composed(data: bytes, *, in_c: bool) -> Any:
    """What the loader composes, with the items it streamed and what it offered to stream."""
    loader = Loader(io.BytesIO(data), in_c=in_c)  # type: ignore[arg-type]  # a file, as loader.py
    items: list[Any] = []
    offered: list[Any] = []

    def streams(pairs: list[Pair], key: Node) -> ItemSink | None:
        offered.append((len(pairs), _flat(key, [])))
        if getattr(key, "value", None) == "runs":
            return lambda item: items.append(_flat(item, []))
        return None

    try:
        root = loader.document(streams)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        assert mark is not None
        return type(exc).__name__, exc.problem, mark.line, mark.column
    return _flat(root, []), items, offered


DOCUMENTS = {
    "nested past the bound": "[" * (2 * DEEP) + "]" * (2 * DEEP),
    "an empty list one level too deep": "[" * (DEEP + 1) + "]" * (DEEP + 1),
    "an empty list at the bound": "[" * DEEP + "]" * DEEP,
    "an empty list too deep after a scalar": "[" * DEEP + "1, []" + "]" * DEEP,
    "an empty list before a full one": "[" * DEEP + "[], [1]" + "]" * DEEP,
    "an empty mapping value too deep": "[" * (DEEP - 1) + "{a: {}, b: [1]}" + "]" * (DEEP - 1),
    "an empty list as a key too deep": "[" * (DEEP - 1) + "{? [] : 1}" + "]" * (DEEP - 1),
    "a mapping at the bound": "[" * (DEEP - 1) + "{a: 1, b: 2}" + "]" * (DEEP - 1),
    "too deep inside a streamed run": "version: 1\nruns:\n  - " + "[" * 99 + "[]" + "]" * 99,
    "no runs": "version: 1\nruns: []\nother: 1\n",
    "runs of every kind": "version: 1\nruns:\n  - {a: 1}\n  - [x, y]\n  - 3\nother: [1]\n",
    "runs twice": "runs: [1]\nruns: [2]\n",
    "defaults after the runs": "version: 1\nruns: [{a: 1}]\ndefaults: {b: 2}\n",
    "a list at the root": "- runs\n- [1, 2]\n",
    "a list as a key": "? [a]\n: [1, 2]\nruns: [1]\n",
    "two documents": "a: 1\n---\nb: 2\n",
    "nothing": "",
    "an undefined alias": "a: *x\n",
    "broken flow": "a: [1, 2\nb: 3\n",
    "styles": "a: 'q'\nb: \"d\"\nc: |\n  block\nd: 0o7\ne: 1.5\nf: ~\ng: yes\nh: 2026-11-03\n",
}


@pytest.mark.parametrize("text", DOCUMENTS.values(), ids=DOCUMENTS.keys())
def test_both_composers_build_the_same(text: str) -> None:
    data = text.encode()
    assert _composed(data, in_c=True) == _composed(data, in_c=False)


def test_the_bound_is_kept_by_the_composer_in_c() -> None:
    error = _composed(DOCUMENTS["an empty list too deep after a scalar"].encode(), in_c=True)
    assert error[0] == "NotSupported"
    assert error[3] == DEEP + 3  # the empty list, after "[" * DEEP + "1, "


# the plain ones: the others (tags, anchors) are always composed event by event
MANIFESTS = [
    path
    for path in sorted((DATA / "manifests").rglob("*.yaml"))
    if b"!" not in (text := path.read_bytes()) and b"&" not in text
]


@pytest.mark.parametrize("path", MANIFESTS, ids=[path.name for path in MANIFESTS])
def test_the_test_manifests_compose_alike(path: Any) -> None:
    data = path.read_bytes()
    assert _composed(data, in_c=True) == _composed(data, in_c=False)


def test_a_tag_or_an_anchor_anywhere_takes_the_composer_in_python() -> None:
    assert Loader(b"a: 1\n").in_c
    assert Loader(io.BytesIO(b"a: 1\n")).in_c  # type: ignore[arg-type]
    assert not Loader(b"a: !!str 1\n").in_c
    assert not Loader(b"a: &x 1\nb: *x\n").in_c
    assert not Loader(io.BytesIO(b"a: 'hi!'\n")).in_c  # type: ignore[arg-type]


def test_keys_are_shared_strings(tmp_path: Any) -> None:
    data = (
        b"version: 1\nruns:\n  - {parameters: {partition: 1}}\n  - {parameters: {partition: 2}}\n"
    )
    loader = Loader(io.BytesIO(data))  # type: ignore[arg-type]
    seen: list[Node] = []
    loader.document(lambda pairs, key: seen.append)
    names = [item.value[0][1].value[0][0].value for item in seen]
    assert names == ["partition", "partition"]
    assert names[0] is names[1]
