"""Manifest v1: YAML in, validated and expanded :class:`RunSpec`\\ s out.

The YAML nodes (:mod:`batchrun.manifest.yamlnodes`, libyaml when available) are walked here, so
every value keeps its position; the runs are composed and expanded one entry at a time, so a big
manifest never holds more than one entry's nodes. Every problem is collected and raised as one
:class:`ManifestError`, sorted by 1-based line and column. ``${VAR}`` references in string
values are substituted (:mod:`batchrun.manifest.envsubst`) before the values are validated.

Run ids:

* A run with ``id: X`` is ``X``. When its ``factory`` and/or ``pipeline`` is a list, each
  expanded run is ``X.<factory>``, ``X.<pipeline>`` or ``X.<factory>.<pipeline>``: only the
  dimensions that were lists. Explicit ids must be unique after expansion.
* A run without an id is ``<factory>.<pipeline>``; when an earlier run derived the same id,
  ``#2``, ``#3``, ... is appended, in manifest order. Names cannot contain ``.`` or ``#``, so
  derived ids never collide with each other; an explicit id that equals one is an error.

Expansion is factory-major: ``factory: [a, b]`` with ``pipeline: [P, Q]`` gives a.P, a.Q, b.P,
b.Q. ``defaults`` may hold any field but ``id`` (a list there expands every run); a run's
``parameters`` are merged key by key over the default ones, every other field replaces the
default. Anchors, aliases and ``<<`` merge keys work as in any YAML loader.

Values are taken as YAML types them: ``factory: 123`` is an error that says to quote it, and
null never means "unset". Parameters must be JSON values, so a YAML date, ``.nan`` or
``!!binary`` is an error. ``${...}`` is substituted in values, not keys, and always yields text.
A subscription that is not a GUID gives one warning per distinct value. ``start_from_failure:
false`` is accepted on any run, as it is the API's default.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.constructor import SafeConstructor
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from batchrun.errors import ManifestError, ManifestIssue
from batchrun.manifest.envsubst import SubstitutionError, substitute
from batchrun.manifest.rules import FIELDS, GUID, NAME_RULES, PATH_UNSAFE, REQUIRED
from batchrun.manifest.yamlnodes import (
    BOOL,
    FLOAT,
    INT,
    INVALID,
    MAP,
    NULL,
    SEQ,
    STR,
    TIMESTAMP,
    ItemSink,
    Loader,
    NodeReader,
    Pair,
    describe_node,
    gc_paused,
    join,
    offset_mark,
)
from batchrun.model import RunSpec

_FIELD_SET: Final = frozenset(FIELDS)
_SCALARS: Final = SafeConstructor()
# The fingerprint is the sha256 of this JSON text, hashed as the runs are built:
# {"fields": FIELDS, "runs": [[the fields of each run], ...]} with sorted keys.
_CANONICAL: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), check_circular=False)


@dataclass(frozen=True, slots=True)
class Manifest:
    path: str
    runs: tuple[RunSpec, ...]
    warnings: tuple[ManifestIssue, ...]
    fingerprint: str  # sha256 hex of the canonical JSON of the expanded runs


def load_manifest(path: str | os.PathLike[str], *, environ: Mapping[str, str]) -> Manifest:
    """Read, validate and expand one manifest; raise :class:`ManifestError` listing every issue."""
    name = os.fspath(path)
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        message = f"cannot read the manifest: {exc.strerror or exc}"
        raise ManifestError([ManifestIssue(name, 0, 0, "", message)]) from exc
    reader = _Reader(name, environ)
    with gc_paused():
        runs, fingerprint = reader.read(data)
    warnings = sorted(reader.warnings, key=_position)
    return Manifest(name, tuple(runs), tuple(warnings), fingerprint)


def load_manifests(
    paths: Sequence[str | os.PathLike[str]], *, environ: Mapping[str, str]
) -> tuple[Manifest, ...]:
    """Load every manifest; the issues of all of them are raised together."""
    manifests: list[Manifest] = []
    issues: list[ManifestIssue] = []
    for path in paths:
        try:
            manifests.append(load_manifest(path, environ=environ))
        except ManifestError as exc:
            issues.extend(exc.issues)
    if issues:
        raise ManifestError(issues)
    return tuple(manifests)


def describe(manifests: Sequence[Manifest]) -> str:
    """What ``batchrun validate`` prints: run counts per subscription and factory, warnings."""
    counts = Counter((run.subscription, run.factory) for m in manifests for run in m.runs)
    lines = [f"{_plural(sum(counts.values()), 'run')} in {_plural(len(manifests), 'manifest')}"]
    width = max((len(factory) for _, factory in counts), default=0)
    for subscription in sorted({sub for sub, _ in counts}):
        factories = sorted((f, n) for (sub, f), n in counts.items() if sub == subscription)
        lines.append(f"subscription {subscription}: {_plural(sum(n for _, n in factories), 'run')}")
        lines.extend(f"  {factory:<{width}}  {n:>7}" for factory, n in factories)
    warnings = [str(warning) for m in manifests for warning in m.warnings]
    if warnings:
        lines.append(f"{_plural(len(warnings), 'warning')}:")
        lines.extend(f"  {warning}" for warning in warnings)
    return "\n".join(lines)


class _Reader(NodeReader):
    """Walks one manifest's nodes, collecting runs, errors and warnings."""

    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        super().__init__(file)
        self.environ = environ
        self._subscriptions: dict[str, str] = {}  # checked already; each kept once
        self._valid: dict[str, dict[str, str]] = {rule: {} for rule in NAME_RULES}  # as well
        self._defaults: MappingNode | None = None
        self._mentions_defaults = True
        self._streamed: tuple[dict[str, Any] | None] | None = None  # what _version_and_defaults
        self._entries = 0  # how many runs entries were read
        self._ids: dict[str, str] = {}  # explicit id -> "LINE:COLUMN:PATH" of its first use
        self._repeats: dict[str, int] = {}  # factory.pipeline -> how many runs derived it
        self._derived: dict[str, int] = {}  # derived id -> the index of its entry in runs
        self._runs: list[RunSpec] = []
        self._fingerprint = hashlib.sha256(
            f'{{"fields":{_CANONICAL.encode(FIELDS)},"runs":['.encode()
        )
        self._rows: list[tuple[Any, ...]] = []  # the runs' fields, not yet hashed
        self._separator = b""

    def read(self, data: bytes) -> tuple[list[RunSpec], str]:
        loader = Loader(data)
        self._mentions_defaults = b"defaults" in data
        try:
            root = loader.document(self._stream)
        except yaml.YAMLError as exc:
            raise ManifestError([self.yaml_issue(exc, data)]) from exc
        finally:
            loader.dispose()
        if root is None:
            start = Mark(self.file, 0, 0, 0, None, 0)
            self.issue(self.errors, start, "", "the manifest is empty: expected 'version: 1'")
        elif not isinstance(root, MappingNode):
            message = f"expected a mapping with version and runs, got {describe_node(root)}"
            self.error(root, "", message)
        else:
            self._top(root)
        for run_id, first in self._ids.items():
            if run_id in self._derived:
                line, column, path = first.split(":", 2)
                mark = Mark(self.file, 0, int(line) - 1, int(column) - 1, None, 0)
                message = f"id {run_id!r} is also the id derived for runs[{self._derived[run_id]}]"
                self.issue(
                    self.errors,
                    mark,
                    path,
                    f"{message} from its factory and pipeline: choose another",
                )
        if self.errors:
            raise ManifestError(sorted(self.errors, key=_position))
        self._hash_rows()
        self._fingerprint.update(b"]}")
        return self._runs, self._fingerprint.hexdigest()

    def _stream(self, pairs: list[Pair], key: Node) -> ItemSink | None:
        """Walk the runs as they are composed, when version and defaults are known by then."""
        if key.tag != STR or key.value != "runs":
            return None
        top: dict[str, Node] = {}
        for key_node, value in pairs:
            if key_node.tag != STR or not isinstance(key_node, ScalarNode):
                return None  # a merge key, or an error that the whole mapping will show
            top.setdefault(key_node.value, value)
        if "runs" in top or "version" not in top:
            return None
        if "defaults" not in top and self._mentions_defaults:
            return None  # defaults may follow the runs
        defaults = self._version_and_defaults(key, top)
        self._streamed = (defaults,)
        if defaults is None:
            return lambda node: None
        index = count()
        return lambda node: self._run(node, f"runs[{next(index)}]", defaults)

    def _top(self, root: MappingNode) -> None:
        top = {key: value for key, (_, value) in self.pairs(root, "", _TOP_KEYS).items()}
        streamed = self._streamed is not None
        defaults = self._streamed[0] if self._streamed else self._version_and_defaults(root, top)
        if defaults is None:
            return
        runs = top.get("runs")
        if runs is None:
            self.error(root, "", "missing 'runs': a list of runs, each with factory and pipeline")
        elif not isinstance(runs, SequenceNode):
            self.error(runs, "runs", f"expected a list of runs, got {describe_node(runs)}")
        elif not (runs.value or self._entries):
            self.error(runs, "runs", "no runs: list at least one run")
        elif not streamed:
            entries = runs.value
            for index, entry in enumerate(entries):
                self._run(entry, f"runs[{index}]", defaults)
                entries[index] = None  # its nodes are freed for the runs built next

    def _version_and_defaults(self, at: Node, top: dict[str, Node]) -> dict[str, Any] | None:
        """The defaults, once the version is checked; None for a version this cannot read."""
        version = top.get("version")
        if version is None:
            self.error(at, "", "missing 'version: 1' (the manifest format version)")
        elif not isinstance(version, ScalarNode) or version.tag != INT:
            self.error(version, "version", f"expected 1, got {describe_node(version)}")
        elif _SCALARS.construct_yaml_int(version) != 1:
            message = f"unsupported version {version.value}: this batchrun reads version 1"
            self.error(version, "version", message)
            return None
        defaults: dict[str, Any] = {}
        node = top.get("defaults")
        if isinstance(node, MappingNode):
            self._defaults = node
            defaults, pairs = self._fields(node, "defaults")
            if "id" in defaults:
                message = "ids name one run each, so 'id' cannot be a default"
                self.error(pairs["id"][1], "defaults.id", message)
                del defaults["id"]
        elif node is not None:
            self.error(node, "defaults", f"expected a mapping, got {describe_node(node)}")
        return defaults

    def _run(self, node: Node, where: str, defaults: dict[str, Any]) -> None:
        self._entries += 1
        if not isinstance(node, MappingNode):
            self.error(node, where, f"expected a mapping of run fields, got {describe_node(node)}")
            return
        own, pairs = self._fields(node, where)
        value = {**defaults, **own}
        if "parameters" in own and "parameters" in defaults:
            base, params = defaults["parameters"], own["parameters"]
            if base is not INVALID and params is not INVALID:
                value["parameters"] = {**base, **params}
        if not value.keys() >= REQUIRED:
            for key in sorted(REQUIRED - value.keys()):
                if not _misspelt(node, key) and not _misspelt(self._defaults, key):
                    self.error(node, where, f"missing '{key}': set it here or under defaults")
            return
        if INVALID in value.values():
            return
        get = value.get
        is_recovery = get("is_recovery")
        from_failure, activity = get("start_from_failure"), get("start_activity_name")
        if is_recovery is not None or from_failure is not None or activity is not None:
            self._check_recovery(node, where, value, pairs)
        if "parameters" in pairs and get("reference_run_id") is not None:
            message = "ignored by ADF: a rerun of reference_run_id gets the reference's parameters"
            mark = pairs["parameters"][1].start_mark
            self.issue(self.warnings, mark, f"{where}.parameters", message)
        explicit, parameters = own.get("id"), get("parameters")
        # A run's own parameters dict can be its first run's; defaults' are copied for each.
        spare = parameters if "parameters" in own else None
        tail = (get("reference_run_id"), is_recovery, from_failure, activity)
        subscription, group = value["subscription"], value["resource_group"]
        factories, pipelines = value["factory"], value["pipeline"]
        factory_list, pipeline_list = type(factories) is tuple, type(pipelines) is tuple
        mark = node.start_mark
        source = f"{self.file}:{mark.line + 1}:{mark.column + 1}"
        if explicit is not None:
            mark = pairs["id"][1].start_mark
            first = f"{mark.line + 1}:{mark.column + 1}:{where}.id"
        rows, index = self._rows, int(where[5:-1])
        for factory in factories if factory_list else (factories,):
            for pipeline in pipelines if pipeline_list else (pipelines,):
                if explicit is None:
                    run_id = f"{factory}.{pipeline}"
                    number = self._repeats[run_id] = self._repeats.get(run_id, 0) + 1
                    run_id = run_id if number == 1 else f"{run_id}#{number}"
                    self._derived[run_id] = index
                else:
                    run_id = explicit
                    run_id += f".{factory}" if factory_list else ""
                    run_id += f".{pipeline}" if pipeline_list else ""
                    self._claim(run_id, first)
                params, spare = spare if spare is not None else dict(parameters or ()), None
                row = (run_id, subscription, group, factory, pipeline, params, *tail)
                rows.append(row)
                self._runs.append(RunSpec(*row, source))
        if len(rows) > 4096:
            self._hash_rows()

    def _hash_rows(self) -> None:
        rows, self._rows = self._rows, []
        if rows and not self.errors:  # else it is not needed, and rows may hold INVALID values
            self._fingerprint.update(self._separator + _CANONICAL.encode(rows)[1:-1].encode())
            self._separator = b","

    def _check_recovery(
        self, node: Node, where: str, value: dict[str, Any], pairs: dict[str, Pair]
    ) -> None:
        def blame(key: str, message: str) -> None:
            if key in pairs:
                self.error(pairs[key][1], f"{where}.{key}", message)
            else:
                self.error(node, where, f"{message} ({key} comes from defaults)")

        recovery = value.get("is_recovery") is True
        activity = value.get("start_activity_name")
        from_failure = value.get("start_from_failure") is True
        for key, present in (
            ("start_activity_name", activity),
            ("start_from_failure", from_failure),
        ):
            if present and not recovery:
                blame(key, f"{key} only applies with is_recovery: true (and reference_run_id)")
        if recovery and value.get("reference_run_id") is None:
            blame("is_recovery", "is_recovery: true needs reference_run_id, the run to recover")
        if activity is not None and from_failure:
            message = "start_activity_name and start_from_failure: true conflict: keep one"
            blame("start_activity_name", message)

    def _claim(self, run_id: str, position: str) -> None:
        first = self._ids.setdefault(run_id, position)
        if first is not position:
            first_line, first_column, first_path = first.split(":", 2)
            line, column, path = position.split(":", 2)
            mark = Mark(self.file, 0, int(line) - 1, int(column) - 1, None, 0)
            where = f"line {first_line}, column {first_column}"
            message = f"id {run_id!r} is already used by {first_path} ({where})"
            self.issue(self.errors, mark, path, message)

    # -- fields: each parser returns the value, or INVALID after reporting why -----------------

    def _fields(self, node: MappingNode, where: str) -> tuple[dict[str, Any], dict[str, Pair]]:
        pairs, values = self.pairs(node, where, _FIELD_SET), {}
        for key, (_, value) in pairs.items():
            values[key] = _PARSERS[key](self, value, where, key)
        return values, pairs

    def _string(self, node: Node, where: str, key: str | int, expected: str = "a string") -> Any:
        if not isinstance(node, ScalarNode) or node.tag != STR:
            hint = ""
            if isinstance(node, ScalarNode) and node.tag != NULL:
                hint = f"; quote it ('{node.value}') if it is meant as text"
            return self.error(
                node, join(where, key), f"expected {expected}, got {describe_node(node)}{hint}"
            )
        return self._substitute(node, join(where, key)) if "$" in node.value else node.value

    def _text(self, node: Node, where: str, key: str) -> Any:
        text = self._string(node, where, key)
        return self.error(node, join(where, key), "must not be empty") if text == "" else text

    def _name(self, node: Node, where: str, key: str | int, rule: str = "") -> Any:
        rule = rule or str(key)
        valid = self._valid[rule]
        if isinstance(node, ScalarNode) and node.value in valid and node.tag == STR:
            return valid[node.value]  # checked before, and without a '$' to substitute
        label = rule.replace("_", " ")
        name = self._string(node, where, key, f"a {label} name")
        if name is INVALID:
            return name
        pattern, lengths, explanation = NAME_RULES[rule]
        if not (len(name) in lengths and pattern.fullmatch(name)):
            message = f"{name!r} is not a valid {label} name: {explanation}"
            return self.error(node, join(where, key), message)
        if name == node.value and "$" not in name:
            return valid.setdefault(name, name)
        return sys.intern(name)  # every run shares one copy of each name

    def _matrix(self, node: Node, where: str, key: str) -> Any:
        valid = self._valid[key]
        if isinstance(node, ScalarNode) and node.value in valid and node.tag == STR:
            return valid[node.value]  # the common case, checked as in _name
        if not isinstance(node, SequenceNode):
            return self._name(node, where, key)
        path = f"{where}.{key}"
        if not node.value:
            return self.error(
                node, path, f"an empty list expands to no runs: list at least one {key}"
            )
        names: list[Any] = []
        for index, item in enumerate(node.value):
            name = self._name(item, path, index, key)
            if name is not INVALID and name in names:
                self.error(item, f"{path}[{index}]", f"{name!r} is listed twice")
            names.append(name)
        return INVALID if INVALID in names else tuple(names)

    def _subscription(self, node: Node, where: str, key: str) -> Any:
        text = self._text(node, where, key)
        if text is INVALID or text in self._subscriptions:
            return self._subscriptions.get(text, text)
        if PATH_UNSAFE.search(text):
            explanation = "it cannot contain '/', '?', '#', '%' or spaces"
            return self.error(
                node, f"{where}.{key}", f"{text!r} is not a subscription id: {explanation}"
            )
        self._subscriptions[text] = text
        if not GUID.fullmatch(text):
            message = f"{text!r} does not look like a subscription id, which is a GUID"
            self.issue(self.warnings, node.start_mark, f"{where}.{key}", message)
        return text

    def _boolean(self, node: Node, where: str, key: str) -> Any:
        if isinstance(node, ScalarNode) and node.tag == BOOL:
            return _SCALARS.construct_yaml_bool(node)
        return self.error(
            node, f"{where}.{key}", f"expected true or false, got {describe_node(node)}"
        )

    def _parameters(self, node: Node, where: str, key: str) -> Any:
        if isinstance(node, MappingNode):  # as in _json, unrolled: plain text needs no call
            path, active, parameters = f"{where}.{key}", self.active, {}
            active.add(id(node))
            for name, (_, value) in self.pairs(node, path, None).items():
                text = value.value
                if value.tag == STR and isinstance(value, ScalarNode) and "$" not in text:
                    parameters[name] = text
                else:
                    parameters[name] = self._json(value, path, name)
            active.discard(id(node))
            return parameters
        message = f"expected a mapping of parameter names to values, got {describe_node(node)}"
        return self.error(node, f"{where}.{key}", message)

    def _json(self, node: Node, where: str, key: str | int) -> Any:
        tag = node.tag
        if isinstance(node, ScalarNode):
            text = node.value
            if tag == STR:
                return self._substitute(node, join(where, key)) if "$" in text else text
            if tag == INT:
                simple = text.isdecimal() and (text[0] != "0" or text == "0")
                return int(text) if simple else _SCALARS.construct_yaml_int(node)
            if tag == BOOL:
                return _SCALARS.construct_yaml_bool(node)
            if tag == NULL:
                return None
            if tag == FLOAT and math.isfinite(number := _SCALARS.construct_yaml_float(node)):
                return number
            if tag in (FLOAT, TIMESTAMP):
                problem = f"YAML reads {text} as {'a date' if tag == TIMESTAMP else 'a number'}"
                message = f"{problem} that JSON cannot hold: quote it ('{text}') to pass text"
                return self.error(node, join(where, key), message)
        path = join(where, key)
        if tag not in (SEQ, MAP):
            kinds = "text, a number, true/false, null, a list or a mapping"
            message = f"{describe_node(node)} is not a JSON value: use {kinds}"
            return self.error(node, path, message)
        if id(node) in self.active:
            return self.error(node, path, "this value contains itself (through an alias)")
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self._json(item, path, index) for index, item in enumerate(node.value)]
            pairs = self.pairs(node, path, None)
            return {name: self._json(value, path, name) for name, (_, value) in pairs.items()}
        finally:
            self.active.discard(id(node))

    def _substitute(self, node: ScalarNode, path: str) -> Any:
        try:
            return substitute(node.value, self.environ)
        except SubstitutionError as exc:
            self.issue(self.errors, offset_mark(node, exc.offset), path, exc.message)
            return INVALID


_TOP_KEYS: Final = frozenset(("version", "defaults", "runs"))
_PARSERS: Final[dict[str, Callable[[_Reader, Node, str, str], Any]]] = dict.fromkeys(
    ("id", "reference_run_id", "start_activity_name"), _Reader._text
)
_PARSERS.update(dict.fromkeys(("is_recovery", "start_from_failure"), _Reader._boolean))
_PARSERS.update(dict.fromkeys(("factory", "pipeline"), _Reader._matrix))
_PARSERS.update(
    subscription=_Reader._subscription, resource_group=_Reader._name, parameters=_Reader._parameters
)


def _misspelt(mapping: MappingNode | None, field: str) -> bool:
    """Whether the mapping has an unknown key reported with "did you mean ``field``?"."""
    keys = [key.value for key, _ in mapping.value if isinstance(key, ScalarNode)] if mapping else []
    unknown = (key for key in keys if key not in _FIELD_SET)
    return any(difflib.get_close_matches(key, _FIELD_SET, n=1) == [field] for key in unknown)


def _position(issue: ManifestIssue) -> tuple[int, int]:
    return issue.line, issue.column


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
