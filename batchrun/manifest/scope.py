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

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import yaml
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from batchrun.errors import ManifestIssue, ScopeError
from batchrun.manifest.envsubst import SubstitutionError, substitute
from batchrun.manifest.loader import load_manifest
from batchrun.manifest.nodereader import INVALID, NodeReader, describe_node
from batchrun.manifest.rules import GUID, name_problem, subscription_problem
from batchrun.manifest.yamlnodes import INT, NULL, Loader
from batchrun.model import FactoryRef

if TYPE_CHECKING:
    from collections.abc import Mapping

_TOP: Final = frozenset(("version", "defaults", "factories"))
_DEFAULTS: Final = frozenset(("subscription", "resource_group"))
_ENTRY: Final = frozenset(("subscription", "resource_group", "factory"))


@dataclass(frozen=True, slots=True)
class Scope:
    path: str
    factories: tuple[FactoryRef, ...]
    warnings: tuple[ManifestIssue, ...] = ()

    @property
    def subscriptions(self) -> frozenset[str]:
        return frozenset(ref.subscription.casefold() for ref in self.factories)


def load_scope(path: str | os.PathLike[str], *, environ: Mapping[str, str]) -> Scope:
    """The factories a scope file (or a manifest) names.

    Raises :class:`ScopeError` listing every problem of a scope file, or
    :class:`~batchrun.errors.ManifestError` for a manifest used as the scope.
    """
    name = os.fspath(path)
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        message = f"cannot read the scope file: {exc.strerror or exc}"
        raise ScopeError([ManifestIssue(name, 0, 0, "", message)]) from exc
    reader = _ScopeReader(name, environ)
    loader = Loader(data)
    try:
        root = loader.document(lambda pairs, key: None)
    except yaml.YAMLError as exc:
        raise ScopeError([reader.yaml_issue(exc, data)]) from exc
    finally:
        loader.dispose()
    if isinstance(root, MappingNode) and _has_key(root, "runs") and not _has_key(root, "factories"):
        return _from_manifest(name, environ, data)
    factories = reader.read(root)
    if reader.errors:
        raise ScopeError(sorted(reader.errors, key=lambda i: (i.line, i.column)))
    return Scope(name, tuple(factories), tuple(reader.warnings))


def _from_manifest(name: str, environ: Mapping[str, str], data: bytes) -> Scope:
    manifest = load_manifest(name, environ=environ, text=data)
    seen: dict[tuple[str, str, str], FactoryRef] = {}
    for run in manifest.runs:
        ref = FactoryRef(run.subscription, run.resource_group, run.factory)
        seen.setdefault(ref.key, ref)
    return Scope(name, tuple(seen.values()), manifest.warnings)


def _has_key(node: MappingNode, key: str) -> bool:
    return any(isinstance(k, ScalarNode) and k.value == key for k, _ in node.value)


class _ScopeReader(NodeReader):
    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        super().__init__(file)
        self.environ = environ
        self._warned: set[str] = set()

    def read(self, root: Node | None) -> list[FactoryRef]:
        expected = "expected a mapping with 'version: 1' and 'factories'"
        if root is None:
            start = Mark(self.file, 0, 0, 0, None, 0)
            self.issue(self.errors, start, "", f"{expected}, got an empty file")
            return []
        if not isinstance(root, MappingNode):
            self.error(root, "", f"{expected}, got {describe_node(root)}")
            return []
        top = {key: value for key, (_, value) in self.pairs(root, "", _TOP).items()}
        version = top.get("version")
        if version is None:
            self.error(root, "", "missing 'version: 1' (the scope file format version)")
        elif not (isinstance(version, ScalarNode) and version.tag == INT and version.value == "1"):
            scalar = isinstance(version, ScalarNode) and version.tag != NULL
            got = repr(version.value) if scalar else describe_node(version)
            self.error(version, "version", f"expected 1, got {got}")
        defaults: dict[str, str] = {}
        if "defaults" in top:
            node = top["defaults"]
            if isinstance(node, MappingNode):
                for key, (_, value) in self.pairs(node, "defaults", _DEFAULTS).items():
                    checked = self._field(value, f"defaults.{key}", key)
                    if checked is not None:
                        defaults[key] = checked
            else:
                self.error(node, "defaults", f"expected a mapping, got {describe_node(node)}")
        entries = top.get("factories")
        if entries is None:
            self.error(root, "", "missing 'factories': a list of {subscription, resource_group, "
                       "factory} (or 'runs:' to use a manifest as the scope)")  # fmt: skip
            return []
        if not isinstance(entries, SequenceNode) or not entries.value:
            what = "an empty list" if isinstance(entries, SequenceNode) else describe_node(entries)
            self.error(entries, "factories", f"expected a list of factories, got {what}")
            return []
        found: dict[tuple[str, str, str], tuple[FactoryRef, str]] = {}
        for index, entry in enumerate(entries.value):
            for ref, node, where in self._entry(entry, f"factories[{index}]", defaults):
                if ref.key in found:
                    first = found[ref.key][1]
                    self.error(node, where, f"factory {ref} is already listed by {first}")
                else:
                    found[ref.key] = (ref, where)
        return [ref for ref, _ in found.values()]

    def _entry(
        self, node: Node, where: str, defaults: dict[str, str]
    ) -> list[tuple[FactoryRef, Node, str]]:
        if not isinstance(node, MappingNode):
            self.error(node, where, f"expected a mapping with factory, got {describe_node(node)}")
            return []
        pairs = {key: value for key, (_, value) in self.pairs(node, where, _ENTRY).items()}
        values: dict[str, str | None] = {}
        for key in ("subscription", "resource_group"):
            if key in pairs:
                values[key] = self._field(pairs[key], f"{where}.{key}", key)
            elif key in defaults:
                values[key] = defaults[key]
            else:
                self.error(node, where, f"missing '{key}': set it here or under defaults")
                values[key] = None
        names: list[tuple[str | None, Node, str]] = []
        factory = pairs.get("factory")
        if factory is None:
            self.error(node, where, "missing 'factory': a factory name or a list of them")
        elif isinstance(factory, SequenceNode) and factory.value:
            for i, item in enumerate(factory.value):
                path = f"{where}.factory[{i}]"
                names.append((self._field(item, path, "factory"), item, path))
        elif isinstance(factory, SequenceNode):
            self.error(factory, f"{where}.factory", "an empty list names no factory")
        else:
            path = f"{where}.factory"
            names.append((self._field(factory, path, "factory"), factory, path))
        subscription, group = values["subscription"], values["resource_group"]
        if subscription is None or group is None:
            return []
        return [(FactoryRef(subscription, group, n), item, p) for n, item, p in names if n]

    def _field(self, node: Node, path: str, rule: str) -> str | None:
        """A name checked by the manifest's rules, or None after reporting why it is not one."""
        label = (
            "a subscription id" if rule == "subscription" else f"a {rule.replace('_', ' ')} name"
        )
        text = self.text(node, path, label)
        if text is INVALID:
            return None
        try:
            value = substitute(text, self.environ)
        except SubstitutionError as exc:
            self.error(node, path, exc.message)  # at the value, as scope files always have
            return None
        if rule == "subscription":
            problem = subscription_problem(value)
        else:
            problem = name_problem(rule, value)
        if problem is not None:
            self.error(node, path, problem)
            return None
        if rule == "subscription" and not GUID.fullmatch(value) and value not in self._warned:
            self._warned.add(value)
            message = f"{value!r} does not look like a subscription id, which is a GUID"
            self.issue(self.warnings, node.start_mark, path, message)
        return value
