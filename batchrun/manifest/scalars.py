"""Whether a scalar means what it looks like.

batchrun reads YAML 1.1 (PyYAML); editors and most tools read YAML 1.2. A plain scalar that the
two read differently, or that YAML 1.1 reads as something it does not look like (``NO`` is
false, ``017`` is 15, ``12:30`` is 750, ``1.10`` is 1.1), is an error that says how to quote it
or how to write the value plainly. What is left means the same to every reader: ``true`` and
``false``, ``null`` and ``~``, decimal integers, and decimals that keep their digits.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from yaml.constructor import SafeConstructor

from batchrun.manifest.limits import INTEGERS

if TYPE_CHECKING:
    from yaml.nodes import ScalarNode

__all__ = ["SUSPECT_START", "integer_problem", "misread", "misread_text"]

BOOL, INT, FLOAT, STR = (f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float", "str"))
# The first characters of plain text that YAML 1.2 may read as a number or YAML 1.1 tools as a
# boolean; other plain text reads as text everywhere, so callers check only these.
SUSPECT_START: Final = frozenset("0123456789+-.yYnN")
_YAML11_ONLY_BOOLEANS: Final = {"y": "true", "Y": "true", "n": "false", "N": "false"}
_CORE_NUMBER: Final = re.compile(  # YAML 1.2 core schema: int, float
    r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+"
    r"|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
_BOOLEANS: Final = frozenset(("true", "True", "TRUE", "false", "False", "FALSE"))
_INTEGER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)")
_DECIMAL: Final = re.compile(r"-?(?:0|[1-9][0-9]*)\.(?:[0-9]*[1-9]|0)(?:[eE][-+][0-9]+)?")
_INT64_DIGITS: Final = len(str(INTEGERS.stop))  # 19: a longer integer cannot fit
_LONGEST: Final = 80  # YAML 1.1 forms longer than this are not converted to show their value
_CONSTRUCT: Final = SafeConstructor()


def misread(node: ScalarNode) -> str | None:
    """Why the scalar does not mean what it looks like, with the fix; None when it does."""
    tag, text = node.tag, node.value
    if tag == STR:
        return None if node.style else misread_text(text)
    if tag == BOOL:
        return None if text in _BOOLEANS else _boolean(text)
    if tag == INT:
        return None if _INTEGER.fullmatch(text) else _integer(node)
    if tag == FLOAT:
        return _float(node)
    return None


def misread_text(text: str) -> str | None:
    """Why plain ``text``, which YAML 1.1 reads as text, is not text to every reader; or None."""
    if text[:1] not in SUSPECT_START:
        return None
    if text in _YAML11_ONLY_BOOLEANS:
        meaning = _YAML11_ONLY_BOOLEANS[text]
        return (
            f"YAML 1.1 tools other than batchrun's read {text} as {meaning}: quote it ('{text}')"
            f" to pass text, or write {meaning}"
        )
    if not _CORE_NUMBER.fullmatch(text):
        return None
    return (
        f"batchrun's YAML 1.1 reads {text} as text but YAML 1.2 (editors, most tools) as a"
        f" number: quote it ('{text}') to pass text, or write the number as JSON does"
        " (15, -0.5, 1000.0)"
    )


def integer_problem(text: str) -> str | None:
    """Why a decimal integer's text cannot be sent (too big for ADF); None when it can be."""
    digits = len(text) - text.startswith("-")
    if digits < _INT64_DIGITS or (digits == _INT64_DIGITS and int(text) in INTEGERS):
        return None
    shown = text if digits <= 30 else f"{text[:12]}...{text[-6:]} ({digits} digits)"
    return (
        f"the integer {shown} does not fit in 64 bits (ADF reads integers as Int64, up to"
        f" {INTEGERS.stop - 1:,}): quote it to pass it as text"
    )


def _boolean(text: str) -> str:
    meaning = {"yes": "true", "on": "true", "no": "false", "off": "false"}.get(text.lower())
    if meaning is None:
        return f"{text!r} is not a boolean: write true or false"
    return (
        f"YAML 1.1 reads {text} as {meaning}, YAML 1.2 as text: quote it ('{text}') to pass"
        f" text, or write {meaning}"
    )


def _integer(node: ScalarNode) -> str:
    text = node.value
    kind = (
        "a base-60 number" if ":" in text
        else "a hexadecimal number" if "x" in text
        else "a binary number" if "b" in text
        else "a number with '_' separators" if "_" in text
        else "a number with a '+' sign" if text.startswith("+")
        else "an octal number"
    )  # fmt: skip
    if len(text) > _LONGEST:
        return f"YAML 1.1 reads this as {kind}: quote it to pass text"
    try:
        value = _CONSTRUCT.construct_yaml_int(node)
    except ValueError:  # an explicit !!int on text that is no integer
        return f"{text!r} is not an integer: write it in decimal digits, or quote it"
    return (
        f"YAML 1.1 reads {text} as {kind}, {value}: quote it ('{text}') to pass text, or write"
        f" {value}"
    )


def _float(node: ScalarNode) -> str | None:
    text = node.value
    try:
        value = _CONSTRUCT.construct_yaml_float(node)
    except ValueError:  # an explicit !!float on text that is no number
        return f"{text!r} is not a number: write it as JSON does (1.5, -0.25), or quote it"
    if not math.isfinite(value):
        return None  # .inf and .nan: the caller says JSON cannot hold them
    if _DECIMAL.fullmatch(text) and Decimal(text) == Decimal(repr(value)):
        return None
    shown = text if len(text) <= _LONGEST else f"{text[:12]}...{text[-6:]}"
    fix = f"quote it ('{shown}') to pass text, or write {value!r}"
    return f"YAML reads {shown} as the number {value!r}: {fix}"
