"""Manifest v1: YAML in, validated and expanded :class:`RunSpec`\\ s out.

The YAML node graph is composed (libyaml when available) and walked here, so every value keeps
its position; every problem is collected and raised as one :class:`ManifestError`, sorted by
1-based line and column. ``${VAR}`` references in string values are substituted
(:mod:`batchrun.envsubst`) before the values are validated.

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
import functools
import gc
import hashlib
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.constructor import SafeConstructor
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError
from yaml.resolver import Resolver

from batchrun.envsubst import SubstitutionError, substitute
from batchrun.errors import ManifestError, ManifestIssue
from batchrun.spec import RunSpec

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP, _MERGE, _SEQ, _MAP = (
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "timestamp", "merge", "seq", "map")
)

# The rules of manifest v1, also read by schema_gen (the JSON Schema) and scope.
FIELDS: Final = (
    "id",
    "subscription",
    "resource_group",
    "factory",
    "pipeline",
    "parameters",
    "reference_run_id",
    "is_recovery",
    "start_from_failure",
    "start_activity_name",
)
_FIELD_SET: Final = frozenset(FIELDS)
REQUIRED: Final = frozenset(("subscription", "resource_group", "factory", "pipeline"))
NAME_RULES: Final = {
    "factory": (
        re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*"),
        range(3, 64),
        "3-63 letters, digits and hyphens, starting and ending with a letter or digit (no '--')",
    ),
    "pipeline": (
        re.compile(r"[A-Za-z0-9_][^<>*#.%&:\\+?/]*"),
        range(1, 261),
        "1-260 characters, starting with a letter, digit or '_', without < > * # . % & : \\ + ? /",
    ),
    "resource_group": (
        re.compile(r"[-\w._()]+"),
        range(1, 91),
        "1-90 letters, digits, '_', '-', '.', '(' and ')'",
    ),
}
PATH_UNSAFE: Final = re.compile(r"[/?#%\s]")
GUID: Final = re.compile(r"[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}")
_GUID, _NAME_RULES, _PATH_UNSAFE = GUID, NAME_RULES, PATH_UNSAFE  # names scope.py still uses

_KINDS: Final = {_STR: "the string", _INT: "the integer", _FLOAT: "the number"}
_KINDS.update({_BOOL: "the boolean", _TIMESTAMP: "the date"})
_SCALARS: Final = SafeConstructor()
_INVALID: Final[Any] = object()  # a value that was present but wrong, and has been reported

_Pair = tuple[Node, Node]


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
    with _gc_paused():
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


_IMPLICIT_TAGS: Final = Resolver()  # the implicit tag rules both safe loaders use
_CLAIMED: Final = frozenset(first for first in Resolver.yaml_implicit_resolvers if first)


@functools.lru_cache(maxsize=4096)
def _resolve(kind: type[Node], value: str | None, implicit: Any) -> str:
    if kind is not ScalarNode:
        return _MAP if kind is MappingNode else _SEQ
    if not implicit[0] or (value and value[0] not in _CLAIMED):
        return _STR  # quoted, or plain with a first character no implicit rule claims
    tag: str = _IMPLICIT_TAGS.resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
    return tag


class _Loader(_BaseLoader):
    """The safe loader, with tag resolution cut down to what a manifest needs.

    The composer calls these hooks for each of a big manifest's million nodes. Keys and names
    repeat, so a C-level cache answers most ``resolve`` calls; no path resolvers are
    registered, so the path-resolver hooks do nothing.
    """

    resolve = staticmethod(_resolve)

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


@contextmanager
def _gc_paused() -> Iterator[None]:
    # Millions of acyclic objects in a burst would trigger full collections that triple the
    # load time of a big manifest.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Reader:
    """Walks one manifest's nodes, collecting runs, errors and warnings."""

    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        self.file = file
        self.environ = environ
        self.errors: list[ManifestIssue] = []
        self.warnings: list[ManifestIssue] = []
        self._subscriptions: set[str] = set()  # checked already
        self._valid: dict[str, set[str]] = {rule: set() for rule in NAME_RULES}
        self._active: set[int] = set()  # collections being walked: stops recursive aliases
        self._defaults: MappingNode | None = None
        self._ids: dict[str, tuple[Node, str]] = {}  # explicit id -> its node and path
        self._repeats: dict[str, int] = {}  # factory.pipeline -> how many runs derived it
        self._derived: dict[str, str] = {}  # derived id -> the path of its run
        self._runs: list[RunSpec] = []
        self._rows: list[tuple[Any, ...]] = []  # the runs' fields, for the fingerprint
        self._parsers: dict[str, Callable[[Node, str, str], Any]] = dict.fromkeys(
            ("id", "reference_run_id", "start_activity_name"), self._text
        )
        self._parsers.update(dict.fromkeys(("is_recovery", "start_from_failure"), self._boolean))
        self._parsers.update(dict.fromkeys(("factory", "pipeline"), self._matrix))
        self._parsers.update(
            subscription=self._subscription, resource_group=self._name, parameters=self._parameters
        )

    def read(self, data: bytes) -> tuple[list[RunSpec], str]:
        loader = _Loader(data)
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise ManifestError([self._yaml_issue(exc, data)]) from exc
        finally:
            loader.dispose()
        if root is None:
            start = Mark(self.file, 0, 0, 0, None, 0)
            self._issue(self.errors, start, "", "the manifest is empty: expected 'version: 1'")
        elif not isinstance(root, MappingNode):
            self.error(root, "", f"expected a mapping with version and runs, got {_describe(root)}")
        else:
            self._top(root)
        for run_id, (node, path) in self._ids.items():
            if run_id in self._derived:
                message = f"id {run_id!r} is also the id derived for {self._derived[run_id]}"
                self.error(node, path, f"{message} from its factory and pipeline: choose another")
        if self.errors:
            raise ManifestError(sorted(self.errors, key=_position))
        # Parameters cannot be cyclic (_json refuses it), so the costly check is skipped.
        canonical = json.dumps(
            {"fields": FIELDS, "runs": self._rows},
            sort_keys=True,
            separators=(",", ":"),
            check_circular=False,
        )
        return self._runs, hashlib.sha256(canonical.encode()).hexdigest()

    def _top(self, root: MappingNode) -> None:
        top = self._pairs(root, "", frozenset(("version", "defaults", "runs")))
        version = top["version"][1] if "version" in top else None
        if version is None:
            self.error(root, "", "missing 'version: 1' (the manifest format version)")
        elif not isinstance(version, ScalarNode) or version.tag != _INT:
            self.error(version, "version", f"expected 1, got {_describe(version)}")
        elif _SCALARS.construct_yaml_int(version) != 1:
            message = f"unsupported version {version.value}: this batchrun reads version 1"
            self.error(version, "version", message)
            return
        defaults: dict[str, Any] = {}
        if "defaults" in top:
            node = top["defaults"][1]
            if isinstance(node, MappingNode):
                self._defaults = node
                defaults, nodes = self._fields(node, "defaults")
                if "id" in defaults:
                    message = "ids name one run each, so 'id' cannot be a default"
                    self.error(nodes["id"][1], "defaults.id", message)
                    del defaults["id"]
            else:
                self.error(node, "defaults", f"expected a mapping, got {_describe(node)}")
        runs = top["runs"][1] if "runs" in top else None
        if runs is None:
            self.error(root, "", "missing 'runs': a list of runs, each with factory and pipeline")
        elif not isinstance(runs, SequenceNode):
            self.error(runs, "runs", f"expected a list of runs, got {_describe(runs)}")
        elif not runs.value:
            self.error(runs, "runs", "no runs: list at least one run")
        else:
            entries = runs.value
            for index, entry in enumerate(entries):
                self._run(entry, f"runs[{index}]", defaults)
                # Free each entry's nodes once walked: the runs built next reuse their memory.
                entries[index] = None

    def _run(self, node: Node, where: str, defaults: dict[str, Any]) -> None:
        if not isinstance(node, MappingNode):
            self.error(node, where, f"expected a mapping of run fields, got {_describe(node)}")
            return
        own, pairs = self._fields(node, where)
        value = {**defaults, **own}
        if "parameters" in own and "parameters" in defaults:
            base, params = defaults["parameters"], own["parameters"]
            if base is not _INVALID and params is not _INVALID:
                value["parameters"] = {**base, **params}
        if not value.keys() >= REQUIRED:
            for key in sorted(REQUIRED - value.keys()):
                if not _misspelt(node, key) and not _misspelt(self._defaults, key):
                    self.error(node, where, f"missing '{key}': set it here or under defaults")
            return
        if _INVALID in value.values():
            return
        get = value.get
        is_recovery = get("is_recovery")
        from_failure, activity = get("start_from_failure"), get("start_activity_name")
        if is_recovery is not None or from_failure is not None or activity is not None:
            self._check_recovery(node, where, value, pairs)
        explicit, parameters = own.get("id"), get("parameters")
        tail = (get("reference_run_id"), is_recovery, from_failure, activity)
        subscription, group = value["subscription"], value["resource_group"]
        factories, pipelines = value["factory"], value["pipeline"]
        factory_list, pipeline_list = type(factories) is tuple, type(pipelines) is tuple
        source = f"{self.file}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
        for factory in factories if factory_list else (factories,):
            for pipeline in pipelines if pipeline_list else (pipelines,):
                if explicit is None:
                    run_id = f"{factory}.{pipeline}"
                    number = self._repeats[run_id] = self._repeats.get(run_id, 0) + 1
                    run_id = run_id if number == 1 else f"{run_id}#{number}"
                    self._derived[run_id] = where
                else:
                    run_id = explicit
                    run_id += f".{factory}" if factory_list else ""
                    run_id += f".{pipeline}" if pipeline_list else ""
                    self._claim(run_id, pairs["id"][1], f"{where}.id")
                params = dict(parameters or ())
                row = (run_id, subscription, group, factory, pipeline, params, *tail)
                self._rows.append(row)
                self._runs.append(RunSpec(*row, source))

    def _check_recovery(
        self, node: Node, where: str, value: dict[str, Any], pairs: dict[str, _Pair]
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

    def _claim(self, run_id: str, node: Node, path: str) -> None:
        if run_id in self._ids:
            first, first_path = self._ids[run_id]
            where = f"line {first.start_mark.line + 1}, column {first.start_mark.column + 1}"
            self.error(node, path, f"id {run_id!r} is already used by {first_path} ({where})")
        else:
            self._ids[run_id] = (node, path)

    # -- fields: each parser returns the value, or _INVALID after reporting why ----------------

    def _fields(self, node: MappingNode, where: str) -> tuple[dict[str, Any], dict[str, _Pair]]:
        parsers, pairs, values = self._parsers, self._pairs(node, where, _FIELD_SET), {}
        for key, (_, value) in pairs.items():
            values[key] = parsers[key](value, where, key)
        return values, pairs

    def _string(self, node: Node, where: str, key: str | int, expected: str = "a string") -> Any:
        if not isinstance(node, ScalarNode) or node.tag != _STR:
            hint = ""
            if isinstance(node, ScalarNode) and node.tag != _NULL:
                hint = f"; quote it ('{node.value}') if it is meant as text"
            return self.error(
                node, _join(where, key), f"expected {expected}, got {_describe(node)}{hint}"
            )
        return self._substitute(node, _join(where, key)) if "$" in node.value else node.value

    def _text(self, node: Node, where: str, key: str) -> Any:
        text = self._string(node, where, key)
        return self.error(node, _join(where, key), "must not be empty") if text == "" else text

    def _name(self, node: Node, where: str, key: str | int, rule: str = "") -> Any:
        rule = rule or str(key)
        valid = self._valid[rule]
        if isinstance(node, ScalarNode) and node.value in valid and node.tag == _STR:
            return node.value  # checked before, and without a '$' to substitute
        label = rule.replace("_", " ")
        name = self._string(node, where, key, f"a {label} name")
        if name is _INVALID:
            return name
        pattern, lengths, explanation = NAME_RULES[rule]
        if not (len(name) in lengths and pattern.fullmatch(name)):
            message = f"{name!r} is not a valid {label} name: {explanation}"
            return self.error(node, _join(where, key), message)
        if name == node.value and "$" not in name:
            valid.add(name)
        return name

    def _matrix(self, node: Node, where: str, key: str) -> Any:
        if isinstance(node, ScalarNode) and node.value in self._valid[key] and node.tag == _STR:
            return node.value  # the common case, checked as in _name
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
            if name is not _INVALID and name in names:
                self.error(item, f"{path}[{index}]", f"{name!r} is listed twice")
            names.append(name)
        return _INVALID if _INVALID in names else tuple(names)

    def _subscription(self, node: Node, where: str, key: str) -> Any:
        text = self._text(node, where, key)
        if text is _INVALID or text in self._subscriptions:
            return text
        if PATH_UNSAFE.search(text):
            explanation = "it cannot contain '/', '?', '#', '%' or spaces"
            return self.error(
                node, f"{where}.{key}", f"{text!r} is not a subscription id: {explanation}"
            )
        self._subscriptions.add(text)
        if not GUID.fullmatch(text):
            message = f"{text!r} does not look like a subscription id, which is a GUID"
            self._issue(self.warnings, node.start_mark, f"{where}.{key}", message)
        return text

    def _boolean(self, node: Node, where: str, key: str) -> Any:
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            return _SCALARS.construct_yaml_bool(node)
        return self.error(node, f"{where}.{key}", f"expected true or false, got {_describe(node)}")

    def _parameters(self, node: Node, where: str, key: str) -> Any:
        if isinstance(node, MappingNode):  # as in _json, unrolled: plain text needs no call
            path, active, parameters = f"{where}.{key}", self._active, {}
            active.add(id(node))
            for name, (_, value) in self._pairs(node, path, None).items():
                text = value.value
                if value.tag == _STR and isinstance(value, ScalarNode) and "$" not in text:
                    parameters[name] = text
                else:
                    parameters[name] = self._json(value, path, name)
            active.discard(id(node))
            return parameters
        message = f"expected a mapping of parameter names to values, got {_describe(node)}"
        return self.error(node, f"{where}.{key}", message)

    def _json(self, node: Node, where: str, key: str | int) -> Any:
        tag = node.tag
        if isinstance(node, ScalarNode):
            text = node.value
            if tag == _STR:
                return self._substitute(node, _join(where, key)) if "$" in text else text
            if tag == _INT:
                simple = text.isdecimal() and (text[0] != "0" or text == "0")
                return int(text) if simple else _SCALARS.construct_yaml_int(node)
            if tag == _BOOL:
                return _SCALARS.construct_yaml_bool(node)
            if tag == _NULL:
                return None
            if tag == _FLOAT and math.isfinite(number := _SCALARS.construct_yaml_float(node)):
                return number
            if tag in (_FLOAT, _TIMESTAMP):
                problem = f"YAML reads {text} as {'a date' if tag == _TIMESTAMP else 'a number'}"
                message = f"{problem} that JSON cannot hold: quote it ('{text}') to pass text"
                return self.error(node, _join(where, key), message)
        path = _join(where, key)
        if tag not in (_SEQ, _MAP):
            kinds = "text, a number, true/false, null, a list or a mapping"
            message = f"{_describe(node)} is not a JSON value: use {kinds}"
            return self.error(node, path, message)
        if id(node) in self._active:
            return self.error(node, path, "this value contains itself (through an alias)")
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self._json(item, path, index) for index, item in enumerate(node.value)]
            pairs = self._pairs(node, path, None)
            return {name: self._json(value, path, name) for name, (_, value) in pairs.items()}
        finally:
            self._active.discard(id(node))

    def _substitute(self, node: ScalarNode, path: str) -> Any:
        try:
            return substitute(node.value, self.environ)
        except SubstitutionError as exc:
            self._issue(self.errors, _offset_mark(node, exc.offset), path, exc.message)
            return _INVALID

    # -- mappings -------------------------------------------------------------------------------

    def _pairs(self, node: Node, where: str, allowed: frozenset[str] | None) -> dict[str, _Pair]:
        """The mapping's pairs by key, after ``<<`` merges; duplicate and unknown keys reported."""
        pairs: dict[str, _Pair] = {}
        merged: list[dict[str, _Pair]] = []
        for pair in node.value:
            key_node = pair[0]
            key = key_node.value
            if (
                key_node.tag == _STR
                and isinstance(key_node, ScalarNode)
                and key not in pairs
                and (allowed is None or key in allowed)
            ):
                pairs[key] = pair
            elif key_node.tag == _MERGE:
                merged.extend(self._merge(pair[1], where, allowed))
            else:
                self._bad_key(key_node, where, pairs, allowed)
        for source in merged:
            for key, pair in source.items():
                pairs.setdefault(key, pair)
        return pairs

    def _bad_key(
        self, node: Node, where: str, pairs: dict[str, _Pair], allowed: frozenset[str] | None
    ) -> None:
        key = node.value
        if not isinstance(node, ScalarNode) or node.tag != _STR:
            hint = f": quote it ('{key}')" if isinstance(node, ScalarNode) else ""
            self.error(node, where, f"keys must be strings, got {_describe(node)}{hint}")
        elif key in pairs:
            mark = pairs[key][0].start_mark
            first = f"first at line {mark.line + 1}, column {mark.column + 1}"
            message = f"duplicate key {key!r} ({first}): YAML would keep only the last one"
            self.error(node, _join(where, key), message)
        else:
            close = difflib.get_close_matches(key, allowed or (), n=1)
            hint = (
                f"did you mean {close[0]!r}?" if close else f"expected {', '.join(allowed or ())}"
            )
            self.error(node, _join(where, key), f"unknown key {key!r}: {hint}")

    def _merge(
        self, node: Node, where: str, allowed: frozenset[str] | None
    ) -> Iterator[dict[str, _Pair]]:
        for source in node.value if isinstance(node, SequenceNode) else [node]:
            if not isinstance(source, MappingNode):
                self.error(source, where, f"'<<' merges mappings, got {_describe(source)}")
            elif id(source) in self._active:
                self.error(source, where, "this mapping merges itself (through an alias)")
            else:
                self._active.add(id(source))
                yield self._pairs(source, where, allowed)
                self._active.discard(id(source))

    # -- issues ---------------------------------------------------------------------------------

    def error(self, node: Node, path: str, message: str) -> Any:
        """Report an error at ``node``; returns _INVALID, to be returned for the value."""
        self._issue(self.errors, node.start_mark, path, message)
        return _INVALID

    def _issue(self, into: list[ManifestIssue], mark: Mark, path: str, message: str) -> None:
        into.append(ManifestIssue(self.file, mark.line + 1, mark.column + 1, path, message))

    def _yaml_issue(self, exc: yaml.YAMLError, data: bytes) -> ManifestIssue:
        if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
            parts = [exc.context or "", exc.problem or ""]
            if exc.context and exc.context_mark is not None:
                context = exc.context_mark
                parts[0] += f" at line {context.line + 1}, column {context.column + 1}"
            mark = exc.problem_mark
            message = "invalid YAML: " + ", ".join(part for part in parts if part)
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


def _offset_mark(node: ScalarNode, offset: int) -> Mark:
    """Where ``offset`` into a scalar's text is in the file, when a one-line scalar allows."""
    start, end = node.start_mark, node.end_mark
    width = end.column - start.column if start.line == end.line else -1
    if node.style in ("'", '"') and width == len(node.value) + 2:
        offset += 1
    elif node.style or width != len(node.value):  # plain is None, or "" from libyaml
        return start
    return Mark(start.name, start.index + offset, start.line, start.column + offset, None, 0)


def _misspelt(mapping: MappingNode | None, field: str) -> bool:
    """Whether the mapping has an unknown key reported with "did you mean ``field``?"."""
    keys = [key.value for key, _ in mapping.value if isinstance(key, ScalarNode)] if mapping else []
    unknown = (key for key in keys if key not in _FIELD_SET)
    return any(difflib.get_close_matches(key, _FIELD_SET, n=1) == [field] for key in unknown)


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "an empty value (null)"
    kind = _KINDS.get(node.tag)
    if kind is None:
        return f"a value tagged {node.tag.replace('tag:yaml.org,2002:', '!!')}"
    return f"{kind} {node.value!r}" if node.tag == _STR else f"{kind} {node.value}"


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _position(issue: ManifestIssue) -> tuple[int, int]:
    return issue.line, issue.column


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
