"""Which factories ``batchrun recover`` searches: a scope file, or the factories of a manifest.

A scope file names factories the way a manifest names runs, with the same ``defaults`` and the
same list shorthand for ``factory``::

    version: 1
    defaults:                      # optional: subscription and/or resource_group
      subscription: 11111111-1111-1111-1111-111111111111
      resource_group: rg-data
    factories:
      - factory: sales-eu
      - factory: [sales-us, sales-apac]      # several factories of the same resource group
      - subscription: 22222222-2222-2222-2222-222222222222
        resource_group: rg-ops
        factory: ops-core

Names are checked as the manifest checks them, ``${VAR}`` is substituted, unknown keys and
factories listed twice (ARM names are case-insensitive) are errors, and every problem is
reported at once with its file:line:column. A file with ``runs:`` is read as a manifest instead
(:func:`~batchrun.manifest.loader.load_manifest`): its distinct factories are the scope.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from batchrun.errors import ManifestError, ManifestIssue
from batchrun.manifest.envsubst import SubstitutionError, substitute
from batchrun.manifest.loader import load_manifest
from batchrun.manifest.rules import GUID, NAME_RULES, PATH_UNSAFE
from batchrun.model import FactoryRef

_STR: Final = "tag:yaml.org,2002:str"
_INT: Final = "tag:yaml.org,2002:int"
_TOP: Final = ("version", "defaults", "factories")
_DEFAULTS: Final = ("subscription", "resource_group")
_ENTRY: Final = ("subscription", "resource_group", "factory")


@dataclass(frozen=True, slots=True)
class Scope:
    path: str
    factories: tuple[FactoryRef, ...]
    warnings: tuple[ManifestIssue, ...] = ()

    @property
    def subscriptions(self) -> frozenset[str]:
        return frozenset(ref.subscription.casefold() for ref in self.factories)


def load_scope(path: str | os.PathLike[str], *, environ: Mapping[str, str]) -> Scope:
    """The factories a scope file (or a manifest) names; :class:`ManifestError` lists problems."""
    name = os.fspath(path)
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        message = f"cannot read the scope file: {exc.strerror or exc}"
        raise ManifestError([ManifestIssue(name, 0, 0, "", message)]) from exc
    try:
        root = yaml.compose(data, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ManifestError([_yaml_issue(name, exc)]) from exc
    if isinstance(root, MappingNode) and _has_key(root, "runs") and not _has_key(root, "factories"):
        return _from_manifest(name, environ)
    reader = _ScopeReader(name, environ)
    factories = reader.read(root)
    if reader.errors:
        raise ManifestError(sorted(reader.errors, key=lambda i: (i.line, i.column)))
    return Scope(name, tuple(factories), tuple(reader.warnings))


def _from_manifest(name: str, environ: Mapping[str, str]) -> Scope:
    manifest = load_manifest(name, environ=environ)
    seen: dict[tuple[str, str, str], FactoryRef] = {}
    for run in manifest.runs:
        ref = FactoryRef(run.subscription, run.resource_group, run.factory)
        seen.setdefault(ref.key, ref)
    return Scope(name, tuple(seen.values()), manifest.warnings)


def _has_key(node: MappingNode, key: str) -> bool:
    return any(isinstance(k, ScalarNode) and k.value == key for k, _ in node.value)


class _ScopeReader:
    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        self.file = file
        self.environ = environ
        self.errors: list[ManifestIssue] = []
        self.warnings: list[ManifestIssue] = []
        self._warned: set[str] = set()

    def read(self, root: Node | None) -> list[FactoryRef]:
        if not isinstance(root, MappingNode):
            got = "an empty file" if root is None else _describe(root)
            self._error(
                root, "", f"expected a mapping with 'version: 1' and 'factories', got {got}"
            )
            return []
        top = self._pairs(root, "", _TOP)
        version = top.get("version")
        if version is None:
            self._error(root, "", "missing 'version: 1' (the scope file format version)")
        elif not (isinstance(version, ScalarNode) and version.tag == _INT and version.value == "1"):
            self._error(version, "version", f"expected 1, got {_describe(version)}")
        defaults: dict[str, tuple[str, Node]] = {}
        if "defaults" in top:
            node = top["defaults"]
            if isinstance(node, MappingNode):
                for key, value in self._pairs(node, "defaults", _DEFAULTS).items():
                    checked = self._field(value, f"defaults.{key}", key)
                    if checked is not None:
                        defaults[key] = (checked, value)
            else:
                self._error(node, "defaults", f"expected a mapping, got {_describe(node)}")
        entries = top.get("factories")
        if entries is None:
            self._error(root, "", "missing 'factories': a list of {subscription, resource_group, "
                        "factory} (or 'runs:' to use a manifest as the scope)")  # fmt: skip
            return []
        if not isinstance(entries, SequenceNode) or not entries.value:
            what = "an empty list" if isinstance(entries, SequenceNode) else _describe(entries)
            self._error(entries, "factories", f"expected a list of factories, got {what}")
            return []
        found: dict[tuple[str, str, str], tuple[FactoryRef, str]] = {}
        for index, entry in enumerate(entries.value):
            for ref, node, where in self._entry(entry, f"factories[{index}]", defaults):
                if ref.key in found:
                    first = found[ref.key][1]
                    self._error(node, where, f"factory {ref} is already listed by {first}")
                else:
                    found[ref.key] = (ref, where)
        return [ref for ref, _ in found.values()]

    def _entry(
        self, node: Node, where: str, defaults: dict[str, tuple[str, Node]]
    ) -> list[tuple[FactoryRef, Node, str]]:
        if not isinstance(node, MappingNode):
            self._error(node, where, f"expected a mapping with factory, got {_describe(node)}")
            return []
        pairs = self._pairs(node, where, _ENTRY)
        values: dict[str, str | None] = {}
        for key in ("subscription", "resource_group"):
            if key in pairs:
                values[key] = self._field(pairs[key], f"{where}.{key}", key)
            elif key in defaults:
                values[key] = defaults[key][0]
            else:
                self._error(node, where, f"missing '{key}': set it here or under defaults")
                values[key] = None
        names: list[tuple[str | None, Node, str]] = []
        factory = pairs.get("factory")
        if factory is None:
            self._error(node, where, "missing 'factory': a factory name or a list of them")
        elif isinstance(factory, SequenceNode) and factory.value:
            for i, item in enumerate(factory.value):
                path = f"{where}.factory[{i}]"
                names.append((self._field(item, path, "factory"), item, path))
        elif isinstance(factory, SequenceNode):
            self._error(factory, f"{where}.factory", "an empty list names no factory")
        else:
            path = f"{where}.factory"
            names.append((self._field(factory, path, "factory"), factory, path))
        subscription, group = values["subscription"], values["resource_group"]
        if subscription is None or group is None:
            return []
        return [(FactoryRef(subscription, group, n), item, p) for n, item, p in names if n]

    def _field(self, node: Node, path: str, rule: str) -> str | None:
        label = rule.replace("_", " ")
        if not isinstance(node, ScalarNode) or node.tag != _STR:
            quotable = isinstance(node, ScalarNode) and node.value
            hint = f"; quote it ('{node.value}')" if quotable else ""
            self._error(node, path, f"expected a {label} name, got {_describe(node)}{hint}")
            return None
        try:
            value = substitute(node.value, self.environ)
        except SubstitutionError as exc:
            self._error(node, path, exc.message)
            return None
        if rule == "subscription":
            if not value or PATH_UNSAFE.search(value):
                explanation = "non-empty, without '/', '?', '#', '%' or spaces"
                self._error(node, path, f"{value!r} is not a subscription id: {explanation}")
                return None
            if not GUID.fullmatch(value) and value not in self._warned:
                self._warned.add(value)
                message = f"{value!r} does not look like a subscription id, which is a GUID"
                self.warnings.append(self._issue(node, path, message))
            return value
        pattern, lengths, explanation = NAME_RULES[rule]
        if not (len(value) in lengths and pattern.fullmatch(value)):
            self._error(node, path, f"{value!r} is not a valid {label} name: {explanation}")
            return None
        return value

    def _pairs(self, node: MappingNode, where: str, allowed: tuple[str, ...]) -> dict[str, Node]:
        pairs: dict[str, Node] = {}
        for key_node, value in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            path = f"{where}.{key}" if where else str(key)
            if not isinstance(key, str) or key_node.tag != _STR:
                self._error(key_node, where, f"keys must be strings, got {_describe(key_node)}")
            elif key in pairs:
                self._error(key_node, path, f"duplicate key {key!r}: YAML would keep the last one")
            elif key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"expected {', '.join(allowed)}"
                self._error(key_node, path, f"unknown key {key!r}: {hint}")
            else:
                pairs[key] = value
        return pairs

    def _issue(self, node: Node | None, path: str, message: str) -> ManifestIssue:
        if node is None:
            return ManifestIssue(self.file, 1, 1, path, message)
        mark = node.start_mark
        return ManifestIssue(self.file, mark.line + 1, mark.column + 1, path, message)

    def _error(self, node: Node | None, path: str, message: str) -> None:
        self.errors.append(self._issue(node, path, message))


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == "tag:yaml.org,2002:null":
        return "an empty value (null)"
    return f"{node.value!r}"


def _yaml_issue(file: str, exc: yaml.YAMLError) -> ManifestIssue:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = ", ".join(part for part in (exc.context, exc.problem) if part)
        return ManifestIssue(file, mark.line + 1, mark.column + 1, "", f"invalid YAML: {problem}")
    return ManifestIssue(file, 0, 0, "", f"invalid YAML: {exc}")
