"""Manifest v1: YAML in, validated and expanded :class:`RunSpec`\\ s out.

The YAML nodes (:mod:`batchrun.manifest.yamlnodes`, libyaml when available) are walked here, so
every value keeps its position; the runs are composed and expanded one entry at a time, so a big
manifest never holds more than one entry's nodes. A manifest whose runs are written one flow
mapping a line (as generated ones are) is read line by line (:mod:`batchrun.manifest.flowlines`),
without a node for each value that was read before; any other is libyaml's to read whole.
Every problem is collected and raised as one :class:`ManifestError`, sorted by 1-based line and
column. ``${VAR}`` references in string values are substituted
(:mod:`batchrun.manifest.envsubst`) before the values are validated.

Run ids:

* A run with ``id: X`` is ``X``. When its ``factory`` and/or ``pipeline`` is a list, each
  expanded run is ``X.<factory>``, ``X.<pipeline>`` or ``X.<factory>.<pipeline>``: only the
  dimensions that were lists. Explicit ids must be unique after expansion.
* A run without an id is ``<factory>.<pipeline>``; when an earlier run derived the same id,
  ``#2``, ``#3``, ... is appended, in manifest order. Names cannot contain ``.`` or ``#``, so
  derived ids never collide with each other; an explicit id that equals one is an error.

* An entry with ``dates`` (:mod:`batchrun.manifest.dates`) adds ``.<date>`` to each of those
  ids: ``X.2026-11-03``, ``X.<factory>.2026-11-03``, ``<factory>.<pipeline>.2026-11-03``.

Expansion is factory-major, the date innermost: ``factory: [a, b]`` with ``pipeline: [P, Q]``
gives a.P, a.Q, b.P, b.Q. ``needs`` are resolved once every run is read
(:mod:`batchrun.manifest.needs`). ``defaults`` may hold any field but ``id`` and ``needs`` (a
list or ``dates`` there expands every run); a run's ``parameters`` are merged key by key over
the default ones, every other field replaces the default. Anchors, aliases and ``<<`` merge
keys work as in any YAML loader.

How each field's value is read (YAML types, plain scalars that must mean what they look like,
JSON parameters, names, ``${VAR}``) is :mod:`batchrun.manifest.fields`; the bounds on nesting,
values and integers are :mod:`batchrun.manifest.limits`. A subscription that is not a GUID
gives one warning per distinct value. ``start_from_failure: false`` is accepted on any run, as
it is the API's default.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import io
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final

import yaml
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from batchrun.errors import ManifestError, ManifestIssue
from batchrun.manifest import flowlines
from batchrun.manifest.fields import FIELD_SET, FieldReader
from batchrun.manifest.indentation import indentation_hint
from batchrun.manifest.nodereader import CLOSE_ENOUGH, INVALID, describe_node
from batchrun.manifest.rules import FIELDS, REQUIRED
from batchrun.manifest.scalars import misread
from batchrun.manifest.yamlnodes import INT, NULL, STR, ItemSink, Loader, Pair, gc_paused
from batchrun.model import RunSpec, position, run_spec_of
from batchrun.text import counted

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from batchrun.manifest.dates import Dates
    from batchrun.manifest.needs import Group, Want

# The fingerprint is the sha256 of this JSON text, hashed as the runs are built:
# {"fields": FIELDS, "runs": [[the fields of each run], ...]} with sorted keys; a manifest with
# needs appends its resolved needs, {"fields": ..., "runs": [...], "needs": {run id: [ids]}},
# so that the fingerprint of every manifest without needs stays what it was.
_CANONICAL: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), check_circular=False)


@dataclass(frozen=True, slots=True)
class Manifest:
    path: str
    runs: tuple[RunSpec, ...]
    warnings: tuple[ManifestIssue, ...]
    fingerprint: str  # sha256 hex of the canonical JSON of the expanded runs
    # run id -> the run ids it needs (:mod:`batchrun.manifest.needs`), for the runs with needs
    needs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def load_manifest(
    path: str | os.PathLike[str], *, environ: Mapping[str, str], text: bytes | None = None
) -> Manifest:
    """Read, validate and expand one manifest; raise :class:`ManifestError` listing every issue.

    ``text``: the file's bytes, when the caller has read them already (a pipe reads once)."""
    name = os.fspath(path)
    try:
        stream = _opened(name, text)
    except OSError as exc:
        raise ManifestError([_unreadable(name, exc)]) from exc
    if isinstance(stream, io.BytesIO):
        text = stream.getvalue()
    reader = _Reader(name, environ, text)
    with stream, gc_paused():
        read = reader.read_lines(stream)
        if read is None:  # not one entry a line: libyaml reads it all, from the top
            reader = _Reader(name, environ, text)
            read = reader.read(stream)
        runs, fingerprint = read
    warnings = _once_each(sorted(reader.warnings, key=_position))
    return Manifest(name, tuple(runs), tuple(warnings), fingerprint, reader.needs)


def _opened(name: str, text: bytes | None) -> BinaryIO:
    """The manifest to read, rewindable: it is read more than once (what it mentions, then
    its runs; libyaml again when the line reader gives up)."""
    if text is not None:
        return io.BytesIO(text)
    # libyaml reads the file as it parses: the whole text in memory would add its size to a
    # big batch's peak (12 MB for 100,000 runs); only an error's hint reads it again
    stream = Path(name).open("rb")  # noqa: SIM115 (the caller closes it)
    if stream.seekable():
        return stream
    # a pipe (`batchrun run <(generate)`, /dev/stdin) can be read only once: keep its text
    with stream:
        return io.BytesIO(stream.read())


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


class _Reader(FieldReader):
    """Walks one manifest's nodes, collecting runs, errors and warnings."""

    def __init__(self, file: str, environ: Mapping[str, str], text: bytes | None) -> None:
        super().__init__(file, environ)
        self._piped = text  # the file's bytes where it could be read only once
        self._defaults: MappingNode | None = None
        self._mentions_defaults = True
        self._streamed: tuple[dict[str, Any] | None] | None = None  # what _version_and_defaults
        self._entries = 0  # how many runs entries were read
        # explicit id -> where its first use is (_packed): an int, not text, because a big
        # manifest holds one per run while it is read (~3 MB less at peak for 100,000 runs)
        self._ids: dict[str, int] = {}
        self._repeats: dict[str, int] = {}  # factory.pipeline -> how many runs derived it
        self._derived: dict[str, int] = {}  # derived id -> the index of its entry in runs
        self._runs: list[RunSpec] = []
        self._fingerprint = hashlib.sha256(
            f'{{"fields":{_CANONICAL.encode(FIELDS)},"runs":['.encode()
        )
        self._rows: list[tuple[Any, ...]] = []  # the runs' fields, not yet hashed
        self._separator = b""
        # needs are resolved once every run is known; what that takes is kept only when the
        # file mentions needs at all, so a big manifest without them is read as before
        self._tracking = True
        self._groups: dict[str, list[Group]] = {}  # an expanded entry's own id -> its runs
        self._wants: list[Want] = []
        self._broken: list[str] = []  # ids (or their prefixes) of entries that are invalid
        self._broken_unnamed = False  # an invalid entry whose ids cannot be told
        self.needs: dict[str, tuple[str, ...]] = {}

    def read(self, stream: BinaryIO) -> tuple[list[RunSpec], str]:
        try:
            found = _mentions(stream, (b"defaults", b"needs"))
            self._mentions_defaults, self._tracking = b"defaults" in found, b"needs" in found
            loader = Loader(stream)  # type: ignore[arg-type]  # PyYAML reads files as well
        except OSError as exc:
            raise ManifestError([_unreadable(self.file, exc)]) from exc
        try:
            root = loader.document(self._stream)
        except yaml.YAMLError as exc:
            data = self._text_again()
            raise ManifestError([_hinted(self.yaml_issue(exc, data), data)]) from exc
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
        return self._finish()

    def read_lines(self, stream: BinaryIO) -> tuple[list[RunSpec], str] | None:
        """Read a manifest whose runs are written one flow mapping a line, after a head that
        libyaml reads (:mod:`batchrun.manifest.flowlines`); None, the stream rewound, for any
        other manifest."""
        try:
            self._tracking = b"needs" in _mentions(stream, (b"needs",))
            read = self._lines(stream)
            if read is None:
                stream.seek(0)
        except OSError as exc:
            raise ManifestError([_unreadable(self.file, exc)]) from exc
        return read

    def _lines(self, stream: BinaryIO) -> tuple[list[RunSpec], str] | None:
        text = flowlines.head(stream)
        if text is None:
            return None
        loader = Loader(text)
        try:
            root = loader.document(lambda pairs, key: None)
        except yaml.YAMLError:
            return None
        finally:
            loader.dispose()
        # the head must be what a streamed read sees before the runs: version (and
        # defaults) once each, and nothing else; any other head is libyaml's to read whole
        if not isinstance(root, MappingNode):
            return None
        # (a list or mapping tagged !!str is no key this can compare)
        keys = [key.value for key, _ in root.value if key.tag == STR and type(key) is ScalarNode]
        if not keys or len(keys) != len(root.value) or len(set(keys)) != len(keys):
            return None
        if keys[-1] != "runs":
            return None
        if "version" not in keys or not _TOP_KEYS.issuperset(keys):
            return None
        top = {key.value: value for key, value in root.value}
        defaults = self._version_and_defaults(root, top)
        if defaults is None:
            return None
        key, value = root.value[-1]
        line = key.start_mark.line
        if key.start_mark.column or value.tag != NULL or line + 1 != text.count(b"\n"):
            return None  # the runs key is not the head's last line
        name = getattr(stream, "name", "<file>")  # as libyaml names its marks
        # libyaml's marks count characters, and not a BOM at the start
        lines = flowlines.entry_lines(stream, line + 1, len(text.decode("utf-8-sig")))
        # the checks that only _run makes cannot fail for an entry with every required field
        # when the defaults hold no field of recovery or dates, and nothing invalid
        plain = not defaults.keys() & _CHECKED and INVALID not in defaults.values()
        missing = REQUIRED - defaults.keys()
        composed = 0  # entries read from their nodes
        try:
            for index, (entry, line, start) in enumerate(lines):
                split = flowlines.plain_pairs(entry) if plain else None
                if split is not None and (read := self.plain_fields(*split, missing)):
                    own, id_column, unread = read
                    for key, first, end in unread:
                        node = flowlines.value_node(entry, first, end, name, line, start)
                        own[key] = self.field(key, node, f"runs[{index}]")
                    at = (line, split[0] - 1)
                    self._plain_run(own, index, defaults, at, id_column, valid=not unread)
                    continue
                composed += 1
                if composed > _COMPOSED_FREELY and composed * _COMPOSED_SHARE > index:
                    return None  # libyaml composes nodes faster: the file is its to read
                node = flowlines.entry_node(entry, name, line, start)
                self._run(node, f"runs[{index}]", defaults)
        except flowlines.NotOneLine:
            return None
        if not self._entries:
            return None
        return self._finish()

    def _finish(self) -> tuple[list[RunSpec], str]:
        """Once every run is read: ids against derived ids, needs, errors, the fingerprint."""
        for run_id, first in self._ids.items():
            if run_id in self._derived:
                mark, path = self._unpacked(first)
                message = f"id {run_id!r} is also the id derived for runs[{self._derived[run_id]}]"
                self.issue(
                    self.errors,
                    mark,
                    path,
                    f"{message} from its factory and pipeline: choose another",
                )
        if self._wants:
            from batchrun.manifest.needs import resolve

            ids = [run.id for run in self._runs]
            self.needs, issues = resolve(self.file, ids, self._groups, self._wants, self._may_be)
            self.errors.extend(issues)
        if self.errors:
            data = self._text_again()
            errors = [_hinted(issue, data) for issue in self.errors]
            raise ManifestError(sorted(errors, key=_position))
        self._hash_rows()
        if self.needs:
            rows = {run_id: list(needed) for run_id, needed in self.needs.items()}
            self._fingerprint.update(f'],"needs":{_CANONICAL.encode(rows)}}}'.encode())
        else:
            self._fingerprint.update(b"]}")
        return self._runs, self._fingerprint.hexdigest()

    def _may_be(self, text: str) -> bool:
        """Whether an id or glob that matched nothing may name a run of an invalid entry."""
        if self._broken_unnamed or (self._broken and _GLOB_CHARACTERS.search(text)):
            return True
        return any(text == b or text.startswith((f"{b}.", f"{b}#")) for b in self._broken)

    def _text_again(self) -> bytes:
        """The manifest's text, for the hints of its errors."""
        if self._piped is not None:
            return self._piped
        try:
            return Path(self.file).read_bytes()
        except OSError as exc:
            raise ManifestError([_unreadable(self.file, exc)]) from exc

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
        elif version.value != "1" and misread(version) is not None:
            self.error(version, "version", f"expected 1, got {version.value}: write 1")
        elif version.value != "1":
            message = f"unsupported version {version.value}: this batchrun reads version 1"
            self.error(version, "version", message)
            return None
        defaults: dict[str, Any] = {}
        node = top.get("defaults")
        if isinstance(node, MappingNode):
            self._defaults = node
            defaults, pairs = self.fields(node, "defaults")
            if "id" in defaults:
                message = "ids name one run each, so 'id' cannot be a default"
                self.error(pairs["id"][1], "defaults.id", message)
                del defaults["id"]
            if "needs" in defaults:
                message = "needs name the runs one entry waits for, so 'needs' cannot be a default"
                self.error(pairs["needs"][1], "defaults.needs", message)
                del defaults["needs"]
        elif node is not None:
            self.error(node, "defaults", f"expected a mapping, got {describe_node(node)}")
        return defaults

    def _run(self, node: Node, where: str, defaults: dict[str, Any]) -> None:
        self._entries += 1
        if not isinstance(node, MappingNode):
            self.error(node, where, f"expected a mapping of run fields, got {describe_node(node)}")
            return
        own, pairs = self.fields(node, where)
        value = _merged(defaults, own)
        if not value.keys() >= REQUIRED:
            for key in sorted(REQUIRED - value.keys()):
                if not _misspelt(node, key) and not _misspelt(self._defaults, key):
                    self.error(node, where, f"missing '{key}': set it here or under defaults")
            if self._tracking:
                self._unbuilt(value)
            return
        if INVALID in value.values():
            if self._tracking:
                self._unbuilt(value)
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
        dates = get("dates")
        if dates is not None:
            self._check_date_parameter(dates, where, own, pairs)
        mark, index, first = node.start_mark, int(where[5:-1]), 0
        if "id" in own:
            id_mark = pairs["id"][1].start_mark
            first = _packed(index, id_mark.line, id_mark.column)
        self._expand(value, own, index, position(mark.line + 1, mark.column + 1), first)

    def _plain_run(
        self,
        own: dict[str, Any],
        index: int,
        defaults: dict[str, Any],
        at: tuple[int, int],
        id_column: int,
        *,
        valid: bool,
    ) -> None:
        """An entry that :meth:`plain_fields` read, at 0-based ``(line, column)``: as
        :meth:`_run`, whose checks it needs none of (it has every required field, and neither
        it nor the defaults a field of recovery or dates). ``valid``: none of its values was
        read from a node (the defaults hold nothing invalid either)."""
        self._entries += 1
        value = _merged(defaults, own)
        if not valid and INVALID in value.values():
            if self._tracking:
                self._unbuilt(value)
            return
        line, column = at
        first = _packed(index, line, id_column) if id_column >= 0 else 0
        where = position(line + 1, column + 1)
        factory, pipeline = value["factory"], value["pipeline"]
        if type(factory) is tuple or type(pipeline) is tuple or self._tracking:
            self._expand(value, own, index, where, first)
            return
        # one run, as _expand builds it: most entries of a generated manifest
        run_id = own.get("id")
        if run_id is None:
            run_id = self._derived_id(factory, pipeline, index)
        else:
            self._claim(run_id, first)
        parameters = value.get("parameters")
        if "parameters" not in own:
            parameters = dict(parameters or ())
        rows = self._rows
        subscription, group = value["subscription"], value["resource_group"]
        # no field of recovery: see _lines
        row = (run_id, subscription, group, factory, pipeline, parameters, None, None, None, None)
        rows.append(row)
        self._runs.append(run_spec_of((*row, self.file, where)))
        if len(rows) > 4096:
            self._hash_rows()

    def _derived_id(self, factory: str, pipeline: str, index: int) -> str:
        """The id of a run whose entry has none: ``factory.pipeline``, then ``#2``, ``#3``…"""
        run_id = f"{factory}.{pipeline}"
        number = self._repeats[run_id] = self._repeats.get(run_id, 0) + 1
        run_id = run_id if number == 1 else f"{run_id}#{number}"
        self._derived[run_id] = index
        return run_id

    def _expand(
        self, value: dict[str, Any], own: dict[str, Any], index: int, at: int, first: int
    ) -> None:
        """The runs of a valid entry: ``at`` is its :func:`~batchrun.model.position`, ``first``
        its id's :func:`_packed` place (when it has an id)."""
        get = value.get
        explicit, parameters, dates = own.get("id"), get("parameters"), get("dates")
        # A run's own parameters dict can be its first run's; defaults' are copied for each.
        spare = parameters if "parameters" in own else None
        tail = (
            get("reference_run_id"),
            get("is_recovery"),
            get("start_from_failure"),
            get("start_activity_name"),
        )
        subscription, group = value["subscription"], value["resource_group"]
        factories, pipelines = value["factory"], value["pipeline"]
        factory_list, pipeline_list = type(factories) is tuple, type(pipelines) is tuple
        source = (self.file, at)
        rows = self._rows
        start = len(self._runs)
        if dates is not None:
            self._dated(value, index, source, tail, dates, explicit, first)
        else:
            for factory in factories if factory_list else (factories,):
                for pipeline in pipelines if pipeline_list else (pipelines,):
                    if explicit is None:
                        run_id = self._derived_id(factory, pipeline, index)
                    else:
                        run_id = explicit
                        run_id += f".{factory}" if factory_list else ""
                        run_id += f".{pipeline}" if pipeline_list else ""
                        self._claim(run_id, first)
                    params, spare = spare if spare is not None else dict(parameters or ()), None
                    row = (run_id, subscription, group, factory, pipeline, params, *tail)
                    rows.append(row)
                    self._runs.append(run_spec_of((*row, *source)))
        if self._tracking:
            self._track(index, start, explicit, factory_list or pipeline_list, dates, own)
        if len(rows) > 4096:
            self._hash_rows()

    def _dated(
        self,
        value: dict[str, Any],
        index: int,
        source: tuple[str, int],
        tail: tuple[Any, ...],
        dates: Dates,
        explicit: str | None,
        first: int,
    ) -> None:
        """The runs of an entry with dates: as the loop in _run, with the date innermost."""
        subscription, group = value["subscription"], value["resource_group"]
        factories, pipelines = value["factory"], value["pipeline"]
        factory_list, pipeline_list = type(factories) is tuple, type(pipelines) is tuple
        parameters, name, labels = value.get("parameters") or {}, dates.parameter, dates.labels
        for factory in factories if factory_list else (factories,):
            for pipeline in pipelines if pipeline_list else (pipelines,):
                if explicit is None:
                    base = f"{factory}.{pipeline}"
                    number = self._repeats[base] = self._repeats.get(base, 0) + 1
                    base = base if number == 1 else f"{base}#{number}"
                    if self._tracking:
                        from batchrun.manifest.needs import Group

                        runs = len(self._runs)
                        part = Group(runs, runs + len(labels), dates.moments)
                        self._groups.setdefault(base, []).append(part)
                else:
                    base = explicit
                    base += f".{factory}" if factory_list else ""
                    base += f".{pipeline}" if pipeline_list else ""
                for label in labels:
                    run_id = f"{base}.{label}"
                    if explicit is None:
                        self._derived[run_id] = index
                    else:
                        self._claim(run_id, first)
                    params = {**parameters, name: label}
                    row = (run_id, subscription, group, factory, pipeline, params, *tail)
                    self._rows.append(row)
                    self._runs.append(run_spec_of((*row, *source)))

    def _track(
        self,
        index: int,
        start: int,
        explicit: str | None,
        listed: bool,
        dates: Dates | None,
        own: dict[str, Any],
    ) -> None:
        """Keep what resolving needs takes: expanded entries' own ids, and entries' needs."""
        # imported here, as resolve is: a manifest without needs does not load them (~0.5 MB
        # and 10 ms of a 100,000-run validate, with what they import)
        from batchrun.manifest.needs import Group, Want

        stop = len(self._runs)
        runs = Group(start, stop, None if dates is None else dates.moments)
        if explicit is not None and (listed or dates is not None):
            self._groups.setdefault(explicit, []).append(runs)
        needs = own.get("needs")
        if needs:
            self._wants.append(Want(index, runs, needs))

    def _unbuilt(self, value: dict[str, Any]) -> None:
        """An invalid entry: the ids it would have had, that needs may name."""
        explicit = value.get("id")
        if isinstance(explicit, str):
            self._broken.append(explicit)
            return
        factories, pipelines = value.get("factory"), value.get("pipeline")
        if not all(isinstance(names, str | tuple) for names in (factories, pipelines)):
            self._broken_unnamed = True
            return
        for factory in factories if isinstance(factories, tuple) else (factories,):
            for pipeline in pipelines if isinstance(pipelines, tuple) else (pipelines,):
                self._broken.append(f"{factory}.{pipeline}")

    def _check_date_parameter(
        self, dates: Dates, where: str, own: dict[str, Any], pairs: dict[str, Pair]
    ) -> None:
        """The run's own parameters cannot set the one its dates set (a default's value can)."""
        if dates.parameter not in (own.get("parameters") or ()):
            return
        node = pairs["parameters"][1]
        keys = [key for key, _ in node.value if getattr(key, "value", None) == dates.parameter]
        message = f"{dates.parameter!r} is set to each date by dates.parameter: remove it here"
        self.error(keys[0] if keys else node, f"{where}.parameters.{dates.parameter}", message)

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

    def _claim(self, run_id: str, position: int) -> None:
        ids = self._ids
        known = len(ids)
        first = ids.setdefault(run_id, position)
        if len(ids) == known:  # claimed before
            first_mark, first_path = self._unpacked(first)
            mark, path = self._unpacked(position)
            where = f"line {first_mark.line + 1}, column {first_mark.column + 1}"
            message = f"id {run_id!r} is already used by {first_path} ({where})"
            self.issue(self.errors, mark, path, message)

    def _unpacked(self, position: int) -> tuple[Mark, str]:
        """The mark and path of an id that :func:`_packed` packed."""
        index, line, column = position >> 2 * _FIELD, position >> _FIELD & _MASK, position & _MASK
        return Mark(self.file, 0, line, column, None, 0), f"runs[{index}].id"


_TOP_KEYS: Final = frozenset(("version", "defaults", "runs"))
# Entries composed by flowlines cost more than libyaml's: once more than this many are, and
# more than one in _COMPOSED_SHARE of those read, libyaml reads the file instead (JSON lines,
# entries with needs, dates or recovery fields, or defaults that _run checks each entry against)
_COMPOSED_FREELY: Final = 64
_COMPOSED_SHARE: Final = 8
# fields of defaults that _run checks each entry against
_CHECKED: Final = frozenset(
    ("reference_run_id", "is_recovery", "start_from_failure", "start_activity_name", "dates")
)


def _merged(defaults: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """An entry's fields over the defaults; the parameters merged key by key."""
    value = {**defaults, **own}
    if "parameters" in own and "parameters" in defaults:
        base, params = defaults["parameters"], own["parameters"]
        if base is not INVALID and params is not INVALID:
            value["parameters"] = {**base, **params}
    return value


_GLOB_CHARACTERS: Final = re.compile(r"[*?\[]")
_FIELD: Final = 40  # bits for a line or a column: wider than any file this reads
_MASK: Final = (1 << _FIELD) - 1


def _packed(index: int, line: int, column: int) -> int:
    """Entry ``index``'s id at 0-based ``line`` and ``column``, as one int."""
    return (index << _FIELD | line) << _FIELD | column


def _misspelt(mapping: MappingNode | None, field: str) -> bool:
    """Whether the mapping has an unknown key reported with "did you mean ``field``?"."""
    keys = [key.value for key, _ in mapping.value if isinstance(key, ScalarNode)] if mapping else []
    unknown = (key for key in keys if key not in FIELD_SET)
    close = difflib.get_close_matches
    return any(close(key, FIELD_SET, n=1, cutoff=CLOSE_ENOUGH) == [field] for key in unknown)


# what PyYAML says where a line is indented one way and meant another
_MISINDENTED: Final = ("did not find expected key", "expected '-' indicator", "not allowed here")


def _hinted(issue: ManifestIssue, data: bytes) -> ManifestIssue:
    """``issue`` with a hint about indentation, when the lines around it show one."""
    unknown_key = issue.message.startswith("unknown key")
    if not unknown_key and not any(words in issue.message for words in _MISINDENTED):
        return issue
    hint = indentation_hint(data.decode("utf-8", "replace"), issue.line, unknown_key=unknown_key)
    if hint is None:
        return issue
    return dataclasses.replace(issue, message=f"{issue.message}; {hint}")


def _unreadable(name: str, exc: OSError) -> ManifestIssue:
    return ManifestIssue(name, 0, 0, "", f"cannot read the manifest: {exc.strerror or exc}")


def _mentions(stream: BinaryIO, words: tuple[bytes, ...], chunk: int = 1 << 20) -> set[bytes]:
    """Which of ``words`` are anywhere in ``stream``, read a chunk at a time; rewound after."""
    found: set[bytes] = set()
    tail, keep = b"", max(len(word) for word in words)
    while len(found) < len(words) and (block := stream.read(chunk)):
        text = tail + block
        found.update(word for word in words if word in text)
        tail = text[-keep:]
    stream.seek(0)
    return found


def _once_each(warnings: list[ManifestIssue]) -> list[ManifestIssue]:
    """The first of warnings that say the same thing (a ``$VAR`` in every entry), counting the
    places of the rest."""
    first: dict[str, int] = {}
    repeats: Counter[str] = Counter()
    kept: list[ManifestIssue] = []
    for warning in warnings:
        if warning.message in first:
            repeats[warning.message] += 1
            continue
        first[warning.message] = len(kept)
        kept.append(warning)
    for message, times in repeats.items():
        index = first[message]
        more = f"{message} (and {counted(times, 'more place')})"
        kept[index] = dataclasses.replace(kept[index], message=more)
    return kept


def _position(issue: ManifestIssue) -> tuple[int, int]:
    return issue.line, issue.column
