"""The run fields of a manifest: each parser reads one field's node into its value.

Every parser returns the value, or INVALID after reporting why at the node's position. Values
are taken as YAML types them, and a plain scalar must mean what it looks like
(:mod:`batchrun.manifest.scalars`): ``factory: 123`` and ``flag: on`` are errors that say how
to quote them. Names follow :mod:`batchrun.manifest.rules`; ``${VAR}`` is substituted in values
(never keys) before they are checked. Parameters must be JSON values, within the limits of
:mod:`batchrun.manifest.limits`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Final

from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from batchrun.manifest.envsubst import (
    SubstitutionError,
    bare_references,
    literal_warning,
    substitute,
)
from batchrun.manifest.limits import MAX_NESTING, MAX_PARAMETER_VALUES
from batchrun.manifest.nodereader import INVALID, NodeReader, describe_node, join, offset_mark
from batchrun.manifest.rules import (
    ENTRY_FIELDS,
    FIELDS,
    GUID,
    NAME_RULES,
    name_problem,
    subscription_problem,
    text_problem,
)
from batchrun.manifest.scalars import SUSPECT_START, integer_problem, misread, misread_text
from batchrun.manifest.yamlnodes import (
    BOOL,
    CLAIMED,
    FLOAT,
    INT,
    MAP,
    NULL,
    PLAIN,
    SEQ,
    STR,
    TIMESTAMP,
    Pair,
    resolve,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["FIELD_SET", "FieldReader", "Need"]

FIELD_SET: Final = frozenset(FIELDS + ENTRY_FIELDS)
_DATE_KEYS: Final = frozenset(("from", "to", "step", "parameter", "format", "max"))
# a needs item as read: its text, its 0-based line and column, its index (None: a lone string)
Need = tuple[str, int, int, int | None]
_SCALARS: Final = SafeConstructor()
_TRUE: Final = frozenset(("true", "True", "TRUE"))
_SHORT_INT_DIGITS: Final = 18  # shorter decimals always fit in 64 bits
_FLOW_STARTS: Final = frozenset("{[")  # a flat mapping's or list's first character


class _TooManyValues(Exception):
    """Raised out of a parameter's walk when its entry's parameters exceed the limit."""


class FieldReader(NodeReader):
    """Reads run fields; the manifest loader walks the document around it."""

    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        super().__init__(file)
        self.environ = environ
        self._subscriptions: dict[str, str] = {}  # checked already; each kept once
        # plain scalars already read as those subscriptions: a repeat needs no reading
        self._plain_subscriptions: dict[str, str] = {}
        self._valid: dict[str, dict[str, str]] = {rule: {} for rule in NAME_RULES}  # as well
        self._values_left = 0  # how many more values the parameters being read may hold
        # what plain_fields takes as read before, by field (id and parameters: by their text)
        self._plain_caches = {
            "subscription": self._plain_subscriptions,
            **{rule: self._valid[rule] for rule in ("resource_group", "factory", "pipeline")},
        }
        # of those, the ones a plain scalar was found to be, that are text as they are written
        self._plain_hits: dict[str, dict[str, str]] = {key: {} for key in self._plain_caches}

    def fields(self, node: MappingNode, where: str) -> tuple[dict[str, Any], dict[str, Pair]]:
        """The fields of a run (or of defaults) by name, and their pairs of nodes."""
        pairs, values = self.pairs(node, where, FIELD_SET), {}
        for key, (_, value) in pairs.items():
            values[key] = _PARSERS[key](self, value, where, key)
        return values, pairs

    def plain_fields(
        self, column: int, pairs: list[tuple[str, str, str]], required: frozenset[str]
    ) -> tuple[dict[str, Any], int, list[tuple[str, int, int]]] | None:
        """What an entry line of plain scalars holds (:func:`~batchrun.manifest.flowlines.
        plain_pairs`: the column where they start, and its pairs) that was read before: its
        fields by name, as :meth:`fields` reads them, the column of its id (-1 without), and
        the fields left to read from their nodes with :meth:`field` (name, first and end
        column; None in the fields until then). None for an entry with a field that only
        :meth:`fields` reads, a key twice, or without a ``required`` field.

        What was read before and is valid (names, subscriptions) is taken as it is, and so are
        plain text and short decimals (ids, parameters) that need no check; this reads nothing
        and reports nothing.
        """
        own: dict[str, Any] = {}
        unread: list[int] = []  # the index of each unread pair
        id_pair = -1
        caches, hits = self._plain_caches, self._plain_hits
        value: Any
        for number, (key, text, _) in enumerate(pairs):
            if key in own:
                return None
            start = text[0]
            if key == "id":
                id_pair = number
                # as _text's common case: plain text that no reader takes for another type
                plain = start not in CLAIMED or _plain_text(text)
                value = text if plain and start not in _FLOW_STARTS else None
            elif key == "parameters":
                value = _plain_parameters(text) if start == "{" else None
            else:
                seen = hits.get(key)
                if seen is None:
                    return None  # a field that only fields() reads
                value = seen.get(text)
                if value is None and start not in _FLOW_STARTS:
                    # as _name's, _matrix's and _subscription's common case: read before
                    value = caches[key].get(text)
                    if value is not None and (start not in CLAIMED or _plain_str(text)):
                        seen[text] = value
                    else:
                        value = None
            own[key] = value
            if value is None:
                unread.append(number)
        if not own.keys() >= required:
            return None
        # where values are, counted only for the few that need it
        id_column = -1 if id_pair < 0 else _value_column(column, pairs, id_pair)
        places = []
        for number in unread:
            key, text, _ = pairs[number]
            first = _value_column(column, pairs, number)
            places.append((key, first, first + len(text)))
        return own, id_column, places

    def field(self, name: str, node: Node, where: str) -> Any:
        """The value of the field ``name`` read from its node, as :meth:`fields` reads it."""
        return _PARSERS[name](self, node, where, name)

    def _string(self, node: Node, where: str, key: str | int, expected: str = "a string") -> Any:
        path = join(where, key)
        text = self.text(node, path, expected)
        if text is INVALID or "$" not in text or not isinstance(node, ScalarNode):
            return text
        return self._substitute(node, path)

    def _text(self, node: Node, where: str, key: str) -> Any:
        text = node.value
        if (
            type(node) is ScalarNode
            and node.tag == STR
            and "$" not in text
            and (node.style or text[:1] not in SUSPECT_START)
            and text
            and (key == "id" or text.isprintable())
        ):
            return text  # the common case: what _string and text_problem would accept
        text = self._string(node, where, key)
        if text is INVALID or (problem := text_problem(text, name=key != "id")) is None:
            return text
        return self.error(node, join(where, key), problem)

    def _name(self, node: Node, where: str, key: str | int, rule: str = "") -> Any:
        rule = rule or str(key)
        valid = self._valid[rule]
        if isinstance(node, ScalarNode) and node.value in valid and node.tag == STR:
            return valid[node.value]  # checked before, and without a '$' to substitute
        name = self._string(node, where, key, f"a {rule.replace('_', ' ')} name")
        if name is INVALID:
            return name
        if (problem := name_problem(rule, name)) is not None:
            return self.error(node, join(where, key), problem)
        if name == node.value and "$" not in name and misread_text(name) is None:
            return valid.setdefault(name, name)  # quoted or not, it reads the same
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
        plain = self._plain_subscriptions
        if isinstance(node, ScalarNode) and node.value in plain and node.tag == STR:
            return plain[node.value]  # read before, and without a '$' to substitute
        text = self._string(node, where, key)
        if text is INVALID or text in self._subscriptions:
            return self._subscriptions.get(text, text)
        if (problem := subscription_problem(text)) is not None:
            return self.error(node, f"{where}.{key}", problem)
        text = self._subscriptions[text] = sys.intern(text)
        if text == node.value and "$" not in text and misread_text(text) is None:
            plain[text] = text
        if not GUID.fullmatch(text):
            message = f"{text!r} does not look like a subscription id, which is a GUID"
            self.issue(self.warnings, node.start_mark, f"{where}.{key}", message)
        return text

    def _boolean(self, node: Node, where: str, key: str) -> Any:
        path = f"{where}.{key}"
        if not isinstance(node, ScalarNode) or node.tag != BOOL:
            return self.error(node, path, f"expected true or false, got {describe_node(node)}")
        if misread(node) is None:
            return node.value in _TRUE
        meaning = str(_SCALARS.construct_yaml_bool(node)).lower()
        message = f"expected true or false, got {node.value}, which YAML 1.2 reads as text"
        return self.error(node, path, f"{message}: write {meaning}")

    def _parameters(self, node: Node, where: str, key: str) -> Any:
        path = f"{where}.{key}"
        if not isinstance(node, MappingNode):
            message = f"expected a mapping of parameter names to values, got {describe_node(node)}"
            return self.error(node, path, message)
        active, parameters = self.active, {}
        self._values_left = MAX_PARAMETER_VALUES
        active.add(id(node))
        try:
            for name, (_, value) in self.pairs(node, path, None).items():
                text = value.value
                # as in _json, unrolled: plain text needs no call
                if (
                    value.tag == STR
                    and isinstance(value, ScalarNode)
                    and "$" not in text
                    and (value.style or text[:1] not in SUSPECT_START)
                ):
                    parameters[name] = text
                    self._values_left -= 1
                elif (
                    value.tag == INT
                    and type(value) is ScalarNode
                    and len(text) < _SHORT_INT_DIGITS
                    and text.isdigit()
                    and text.isascii()
                    and (text[0] != "0" or text == "0")
                ):
                    # a short plain decimal: what _json would read, without its checks' calls
                    parameters[name] = int(text)
                    self._values_left -= 1
                else:
                    parameters[name] = self._json(value, path, name)
            if self._values_left < 0:
                raise _TooManyValues
        except _TooManyValues:
            message = (
                f"the parameters expand to more than {MAX_PARAMETER_VALUES:,} values by here (an"
                f" alias repeats all it names): a run's parameters may hold at most"
                f" {MAX_PARAMETER_VALUES:,}"
            )
            return self.error(value, join(path, name), message)
        finally:
            active.discard(id(node))
        return parameters

    def _json(self, node: Node, where: str, key: str | int) -> Any:
        self._values_left -= 1
        if self._values_left < 0:
            raise _TooManyValues
        tag = node.tag
        if isinstance(node, ScalarNode):
            text = node.value
            if tag == STR:
                text = self.text(node, join(where, key), "text")
                if text is INVALID or "$" not in text:
                    return text
                return self._substitute(node, join(where, key))
            if tag in (INT, BOOL, FLOAT) and (problem := misread(node)) is not None:
                return self.error(node, join(where, key), problem)
            if tag == INT:
                problem = integer_problem(text)
                return int(text) if problem is None else self.error(node, join(where, key), problem)
            if tag == BOOL:
                return text in _TRUE
            if tag == NULL:
                return None
            if tag == FLOAT and text[-1:].isdigit():  # not .inf or .nan
                return float(text)
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
        if len(self.active) > MAX_NESTING:
            message = f"nested more than {MAX_NESTING} lists and mappings deep: parameters may"
            return self.error(node, path, f"{message} nest {MAX_NESTING} levels")
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self._json(item, path, index) for index, item in enumerate(node.value)]
            pairs = self.pairs(node, path, None)
            return {name: self._json(value, path, name) for name, (_, value) in pairs.items()}
        finally:
            self.active.discard(id(node))

    def _needs(self, node: Node, where: str, key: str) -> Any:
        path = f"{where}.{key}"
        if isinstance(node, SequenceNode):
            items: list[tuple[Node, int | None]] = [(item, i) for i, item in enumerate(node.value)]
        else:
            items = [(node, None)]
        needs: list[Need] = []
        for item, index in items:
            if index is None:
                text = self._string(item, where, key, _NEED)
            else:
                text = self._string(item, path, index, _NEED)
            if text is INVALID:
                continue
            if text == "":
                self.error(item, path if index is None else f"{path}[{index}]", "must not be empty")
                continue
            mark = item.start_mark
            needs.append((text, mark.line, mark.column, index))
        return tuple(needs) if len(needs) == len(items) else INVALID

    def _dates(self, node: Node, where: str, key: str) -> Any:
        # here, not at the top: datetime is only loaded for a manifest with dates
        from batchrun.manifest.dates import DEFAULT_MAX, Dates, expand, step

        path = f"{where}.{key}"
        if not isinstance(node, MappingNode):
            expected = (
                "a mapping {from: DATE, to: DATE, parameter: NAME} (step, format, max: optional)"
            )
            return self.error(node, path, f"expected {expected}, got {describe_node(node)}")
        errors = len(self.errors)
        pairs = {name: value for name, (_, value) in self.pairs(node, path, _DATE_KEYS).items()}
        for name in ("from", "to", "parameter"):
            if name not in pairs:
                self.error(node, path, f"missing '{name}': {_DATE_HELP[name]}")
        values: dict[str, Any] = {}
        for name in ("from", "to"):
            if name in pairs:
                values[name] = self._moment(pairs[name], f"{path}.{name}")
        by = self._date_text(pairs, path, "step", "1d")
        if by is not INVALID:
            by = step(by)
            if isinstance(by, str):
                by = self.error(pairs["step"], f"{path}.step", by)
        parameter = self._date_text(pairs, path, "parameter", None)
        strftime = self._date_text(pairs, path, "format", None)
        limit = DEFAULT_MAX
        if "max" in pairs:
            node, limit = pairs["max"], INVALID
            if isinstance(node, ScalarNode) and node.tag == INT and misread(node) is None:
                limit = int(node.value)
            if limit is INVALID or limit < 1:
                limit = self.error(node, f"{path}.max", "expected a whole number above 0")
        if len(self.errors) > errors or INVALID in (*values.values(), by, parameter, limit):
            return INVALID
        dates = expand(
            values["from"], values["to"], by, parameter=parameter, strftime=strftime, limit=limit
        )
        if isinstance(dates, Dates):
            return dates
        blamed, message = dates
        return self.error(pairs.get(blamed, node), f"{path}.{blamed}", message)

    def _moment(self, node: Node, path: str) -> Any:
        from batchrun.manifest.dates import moment

        if isinstance(node, ScalarNode) and node.tag == TIMESTAMP:
            text = node.value  # unquoted 2026-11-03: YAML's timestamp, taken as written
        else:
            where, _, name = path.rpartition(".")
            text = self._string(node, where, name, "a date (YYYY-MM-DD) or a date-time")
            if text is INVALID:
                return text
        value = moment(text)
        return self.error(node, path, value) if isinstance(value, str) else value

    def _date_text(self, pairs: dict[str, Node], path: str, name: str, default: Any) -> Any:
        if name not in pairs:
            return default
        text = self._string(pairs[name], path, name)
        if text == "":
            return self.error(pairs[name], f"{path}.{name}", "must not be empty")
        return text

    def _substitute(self, node: ScalarNode, path: str) -> Any:
        for offset, name in bare_references(node.value):
            self.issue(self.warnings, offset_mark(node, offset), path, literal_warning(name))
        try:
            return substitute(node.value, self.environ)
        except SubstitutionError as exc:
            self.issue(self.errors, offset_mark(node, exc.offset), path, exc.message)
            return INVALID


def _value_column(column: int, pairs: list[tuple[str, str, str]], number: int) -> int:
    """The column of the value of ``pairs[number]``, when the pairs start at ``column``."""
    for key, text, separator in pairs[:number]:
        column += len(key) + len(text) + len(separator) + 2
    return column + len(pairs[number][0]) + 2


def _plain_str(text: str) -> bool:
    """Whether a plain scalar is text, as YAML types it."""
    return resolve(ScalarNode, text, PLAIN) == STR


def _plain_text(text: str) -> bool:
    """Whether a plain scalar is text to YAML 1.1 and 1.2 alike (no ``$`` in it)."""
    return text[0] not in SUSPECT_START and _plain_str(text)


def _plain_parameters(text: str) -> dict[str, Any] | None:
    """The parameters of a flat mapping of plain scalars, ``{p: 1, q: text}``, when each name
    is text and each value plain text or a short decimal (what _parameters takes as it is);
    else None."""
    parameters: dict[str, Any] = {}
    inner = text[1:-1]
    if not inner:
        return parameters
    items = inner.split(", ")
    if len(items) > MAX_PARAMETER_VALUES:
        return None
    for item in items:
        name, _, value = item.partition(": ")
        if name in parameters or (name[0] in CLAIMED and not _plain_str(name)):
            return None
        start = value[0]
        if start not in CLAIMED or _plain_text(value):
            parameters[sys.intern(name)] = value
        elif value.isdigit() and len(value) < _SHORT_INT_DIGITS and (start != "0" or value == "0"):
            parameters[sys.intern(name)] = int(value)
        else:
            return None
    return parameters


_NEED: Final = "a run id or a glob (load.*)"
_DATE_HELP: Final = {
    "from": "the first date, like 2026-11-01",
    "to": "the last date, included",
    "parameter": "the pipeline parameter that gets each date",
}

_PARSERS: Final[dict[str, Callable[[FieldReader, Node, str, str], Any]]] = dict.fromkeys(
    ("id", "reference_run_id", "start_activity_name"), FieldReader._text
)
_PARSERS.update(dict.fromkeys(("is_recovery", "start_from_failure"), FieldReader._boolean))
_PARSERS.update(dict.fromkeys(("factory", "pipeline"), FieldReader._matrix))
_PARSERS.update(
    subscription=FieldReader._subscription,
    resource_group=FieldReader._name,
    parameters=FieldReader._parameters,
    needs=FieldReader._needs,
    dates=FieldReader._dates,
)
