"""Entries one flow mapping a line are read without libyaml, and read exactly as libyaml would:
the same nodes (tags, values, styles, marks), and for a whole manifest the same runs, positions,
fingerprint, warnings and errors as the libyaml reader gives the same text."""

from __future__ import annotations

import io
import random
from typing import TYPE_CHECKING, Any

import pytest
from yaml.nodes import MappingNode, Node, ScalarNode

from batchrun.errors import ManifestError
from batchrun.manifest import flowlines
from batchrun.manifest.loader import load_manifest
from batchrun.manifest.yamlnodes import Loader

if TYPE_CHECKING:
    from pathlib import Path

# scalars as a generated manifest may write them, and ones that YAML reads otherwise than
# they look (numbers, booleans, null, dates), that are no valid name, or not plain text
SCALARS = (
    "run-1", "factory-0", "LoadOrders", "rg-bench", "6f992f45-3464-5b3d-9569-fe8eb6d62303",
    "a b", "x  y", "(x)", "a@b", "a/b", "_x", "1", "0", "007", "-1", "+1", "1.5", "1e3",
    ".inf", "yes", "no", "on", "y", "n", "true", "False", "null", "~", "2026-11-03", "0x1F",
    "1_000", "12:30", "12345678901234567890", "a.b", "a#b", "$x", "${HOME}", "f-", "-f", "--x",
    '"q"', "'s'", '"a, b: c"', '""', "''", "'it''s'", '"\\n"', '"tab\there"', "é", "a,b",
)  # fmt: skip
KEYS = (
    "id", "subscription", "resource_group", "factory", "pipeline", "parameters", "factroy",
    "needs", "is_recovery", "reference_run_id", "x", "on", '"id"', "'factory'", "a b",
)  # fmt: skip


def _flat(node: Node | None) -> Any:
    if node is None:
        return None
    start, end = node.start_mark, node.end_mark
    head: tuple[Any, ...] = (type(node).__name__, node.tag, (start.index, start.line, start.column))
    head += ((end.index, end.line, end.column), getattr(node, "style", None))
    if isinstance(node, ScalarNode):
        return (*head, node.value)
    children = [
        tuple(_flat(child) for child in entry) if isinstance(entry, tuple) else _flat(entry)
        for entry in node.value
    ]
    return (*head, getattr(node, "flow_style", None), children)


def _value(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth == 0 and roll < 0.15:
        pairs = [f"{rng.choice(KEYS)}: {_value(rng, 1)}" for _ in range(rng.randrange(3))]
        return "{" + ", ".join(pairs) + "}"
    if depth == 0 and roll < 0.25:
        return "[" + ", ".join(_value(rng, 1) for _ in range(rng.randrange(3))) + "]"
    return rng.choice(SCALARS)


def _line(rng: random.Random) -> str:
    pairs = [f"{rng.choice(KEYS)}: {_value(rng)}" for _ in range(rng.randrange(1, 6))]
    trailer = rng.choice(("", "", " ", "  # a comment", " #}"))
    return f"{' ' * rng.choice((0, 2, 4))}- {{{', '.join(pairs)}}}{trailer}\n"


def _libyaml_entry(head: str, line: str) -> Any:
    """The entry node libyaml composes from the line, below a head of ``head``."""
    composer = Loader(io.BytesIO(f"{head}{line}".encode()))  # type: ignore[arg-type]
    try:
        root = composer.document(lambda pairs, key: None)
    finally:
        composer.dispose()
    assert isinstance(root, MappingNode)
    return root.value[-1][1].value[0]


@pytest.mark.parametrize("seed", range(8))
def test_an_entry_line_composes_as_libyaml_composes_it(seed: int) -> None:
    rng = random.Random(seed)
    head = "version: 1\nruns:\n"
    read = 0
    for _ in range(400):
        line = _line(rng)
        try:
            node = flowlines.entry_node(line, "<file>", 2, len(head))
        except flowlines.NotOneLine:
            continue
        read += 1
        assert _flat(node) == _flat(_libyaml_entry(head, line)), line
    assert read > 100  # most generated lines are the module's to read


@pytest.mark.parametrize("seed", range(8))
def test_a_plain_line_splits_into_the_values_libyaml_composes(seed: int) -> None:
    rng = random.Random(100 + seed)
    head = "version: 1\nruns:\n"
    read = 0
    for _ in range(400):
        line = _line(rng)
        split = flowlines.plain_pairs(line)
        if split is None:
            continue
        read += 1
        expected = _libyaml_entry(head, line)
        column, pairs = split
        assert column - 1 == expected.start_mark.column
        assert len(pairs) == len(expected.value)
        for (key, text, _), (key_node, value_node) in zip(pairs, expected.value, strict=True):
            assert key == key_node.value
            first = value_node.start_mark.column
            assert line[first : value_node.end_mark.column] == text
            node = flowlines.value_node(line, first, first + len(text), "<file>", 2, len(head))
            assert _flat(node) == _flat(value_node), line
    assert read > 50


@pytest.mark.parametrize(
    "line",
    [
        '  - {id: "a\\"b", factory: f}\n',  # an escape
        "  - {id: a, factory: f}}\n",
        "  - {id: a,factory: f}\n",
        "  - {id: a , factory: f}\n",
        "  - {id: a}#c\n",
        "  - {id: [a, [b]]}\n",  # nested past a flat list
        "  - {id: &x a}\n",
        "  - {id: !!str a}\n",
        "  - {? id: a}\n",
        "  - {id: a}\r\n",
        "  - {id: a\tb}\n",
        "  - {id: -}\n",
        "  - {id: @a}\n",
        "  - {id: a: b}\n",
        "  - {id: }\n",
        "  - {}\n",
        f"  - {{{'k' * 1001}: v}}\n",  # libyaml takes a key this long for no key
    ],
)
def test_a_line_it_cannot_read_exactly_is_left_to_libyaml(line: str) -> None:
    with pytest.raises(flowlines.NotOneLine):
        flowlines.entry_node(line, "<file>", 2, 20)
    assert flowlines.plain_pairs(line) is None


# heads that read, each with the fields its defaults do not give
HEADS = {
    "version: 1\nruns:\n": ("resource_group", "pipeline", "subscription"),
    "version: 1\ndefaults: {resource_group: rg, pipeline: P}\nruns:\n": ("subscription",),
    "# generated\nversion: 1\ndefaults:\n  resource_group: rg\n  pipeline: P\n"
    "  parameters: {region: eu, day: 3}\n  subscription: 00000000-0000-0000-0000-000000000001\n"
    "runs:\n": (),
}
BAD_HEADS = (
    "version: 1\ndefaults: {resource_group: rg, pipeline: P, reference_run_id: r}\nruns:\n",
    "version: 1\ndefaults: {resource_group: rg, pipeline: bad.name}\nruns:\n",
    "version: '1'\ndefaults: {resource_group: rg}\nruns:\n",
    "version: 2\nruns:\n",
    "defaults: {resource_group: rg}\nversion: 1\nruns:\n",
)
FIELDS = {
    "subscription": ("00000000-0000-0000-0000-000000000001", "sub-a"),
    "resource_group": ("rg-2", "rg"),
    "factory": ("factory-0", "factory-1", "[fa-1, fa-2]"),
    "pipeline": ("LoadOrders", "P2"),
}
MORE_FIELDS = (
    ("parameters: {partition: 1}", "parameters: {day: 7, region: us, note: a b}"),
    ("dates: {from: 2026-11-01, to: 2026-11-03, parameter: run_date}",),
    ("reference_run_id: r-1, is_recovery: true",),
)
BAD_FIELDS = (
    "factory: f",
    "factory: on",
    "subscription: 12",
    "parameters: {partition: 012}",
    "parameters: {p: 1, p: 2}",
    "parameters: [1]",
    "pipeline: 1.5",
    "factroy: f-1",
    "needs: run-0",
    "id: 7",
    "id: yes",
    "id: [a, b]",
    "id: {a: b}",
    "subscription: [a]",
    "id: run-1",  # again
    "start_activity_name: Copy",
    "resource_group: x",  # twice
    'pipeline: "P\\"2"',  # an escape: libyaml reads the file from the top
)


def _manifest(rng: random.Random, runs: int, *, bad: bool) -> str:
    head = rng.choice([*HEADS, *(BAD_HEADS if bad else ())])
    lines = [head]
    for index in range(runs):
        fields = [f"id: run-{index}"] if rng.random() < 0.8 else []
        needed = {*HEADS.get(head, FIELDS), "factory"}
        fields += [f"{name}: {rng.choice(FIELDS[name])}" for name in sorted(needed)]
        fields += [rng.choice(kind) for kind in rng.sample(MORE_FIELDS, rng.randrange(3))]
        if bad and rng.random() < 0.1:
            fields.append(rng.choice(BAD_FIELDS))
        if bad and rng.random() < 0.05:
            fields.pop(0)
        rng.shuffle(fields)
        lines.append(f"  - {{{', '.join(fields)}}}\n")
        if index % 7 == 0:
            lines.append(rng.choice(("\n", "  # a comment\n", "# a comment\n")))
    return "".join(lines)


def _read(path: Path) -> Any:
    try:
        manifest = load_manifest(path, environ={})
    except ManifestError as exc:
        return [str(issue) for issue in exc.issues]
    runs = [(run, run.source, list(run.parameters.items())) for run in manifest.runs]
    return runs, manifest.fingerprint, manifest.warnings, manifest.needs


@pytest.mark.parametrize("bad", [False, True], ids=["valid", "with errors"])
@pytest.mark.parametrize("seed", range(6))
def test_a_manifest_reads_as_libyaml_reads_it(tmp_path: Path, seed: int, *, bad: bool) -> None:
    rng = random.Random(seed)
    text = _manifest(rng, 60, bad=bad)
    lines, whole = tmp_path / "m.yaml", tmp_path / "m2.yaml"
    lines.write_text(text)
    # the same document, with an end marker that only libyaml reads; named alike
    whole.write_text(f"{text}...\n")
    expected = _read(whole)
    whole.unlink()
    lines.rename(whole)
    assert _read(whole) == expected


def test_the_bench_shape_is_read_without_libyaml_s_composer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1\ndefaults: {resource_group: rg-bench, pipeline: LoadOrders}\nruns:\n"
        + "".join(
            f"  - {{id: run-{n:06d}, subscription: 6f992f45-3464-5b3d-9569-fe8eb6d62303, "
            f"factory: factory-{n % 3}, parameters: {{partition: {n}}}}}\n"
            for n in range(50)
        )
    )

    def not_libyaml(*args: object) -> None:
        raise AssertionError("read by libyaml")

    monkeypatch.setattr("batchrun.manifest.loader._Reader.read", not_libyaml)
    manifest = load_manifest(path, environ={})
    assert [run.parameters for run in manifest.runs[:2]] == [{"partition": 0}, {"partition": 1}]
    assert manifest.runs[49].source == f"{path}:53:5"
    assert manifest.runs[49].id == "run-000049"


@pytest.mark.parametrize("field", BAD_FIELDS)
def test_an_entry_with_a_wrong_field_reads_as_libyaml_reads_it(tmp_path: Path, field: str) -> None:
    good = "subscription: sub-a, factory: factory-0"
    text = (
        "version: 1\ndefaults: {resource_group: rg, pipeline: P}\nruns:\n"
        f"  - {{id: run-0, {good}}}\n  - {{{good}, {field}}}\n  - {{{field}, {good}}}\n"
    )
    whole = tmp_path / "m.yaml"
    whole.write_text(f"{text}...\n")
    expected = _read(whole)
    whole.write_text(text)
    assert _read(whole) == expected


@pytest.mark.parametrize(
    "key", ["id", "subscription", "resource_group", "factory", "pipeline", "parameters"]
)
def test_every_value_of_a_field_reads_as_libyaml_reads_it(tmp_path: Path, key: str) -> None:
    fields = {
        "subscription": "sub-a",
        "resource_group": "rg",
        "factory": "factory-0",
        "pipeline": "P",
    }
    values = [*SCALARS, "[a, b]", "[]", "{a: b}", "{}", "{p: 1, q: x}", "{p: 012}", "{null: 1}"]
    whole = tmp_path / "m.yaml"
    for value in values:
        entry = ", ".join(f"{name}: {text}" for name, text in {**fields, key: value}.items())
        # the value read twice: once as new, once as read before (names and subscriptions)
        text = f"version: 1\nruns:\n  - {{{entry}}}\n  - {{{entry}}}\n"
        whole.write_text(f"{text}...\n")
        expected = _read(whole)
        whole.write_text(text)
        assert _read(whole) == expected, value


@pytest.mark.parametrize("quoted", [1, 8, 200], ids=["one", "a few", "every"])
def test_lines_with_quotes_read_as_libyaml_reads_them(tmp_path: Path, quoted: int) -> None:
    # past a share of entries composed here, libyaml reads the file: the same either way
    lines = ["version: 1\ndefaults: {resource_group: rg, pipeline: P}\nruns:\n"]
    for n in range(200):
        factory = '"factory-0"' if n % (200 // quoted) == 0 else "factory-0"
        lines.append(f'  - {{"id": "run-{n}", subscription: sub-a, factory: {factory}}}\n')
    lines.append('  - {"id": "run-3", subscription: sub-a, factory: factory-1}\n')  # again
    lines.append("  - {id: run-x, subscription: sub-a, factory: f}\n")  # no factory name
    whole = tmp_path / "m.yaml"
    whole.write_text("".join([*lines, "...\n"]))
    expected = _read(whole)
    whole.write_text("".join(lines))
    assert _read(whole) == expected
    assert len(expected) == 2
