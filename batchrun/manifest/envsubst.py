"""``${VAR}`` and ``${VAR:-default}`` substitution in manifest strings; ``$$`` is a literal ``$``.

Like the shell, ``${VAR:-default}`` uses the default when ``VAR`` is unset *or* empty. A ``$``
followed by anything else is kept as it is, so ``^sales$`` needs no escaping. The result is
always a string: substitution never turns text into a number or a boolean.

``$VAR`` without braces is not a reference: it is sent as written, and
:func:`bare_references` finds it so the loader can warn (``$$VAR`` says "literally, on purpose").

A default is literal text up to the first ``}``: ``${A:-x}}`` is ``x}`` (as in the shell, so
``{"n": ${N:-1}}`` works). A default cannot hold a reference: ``${A:-${B}}`` is an error at the
inner ``${``, where a reader that does not nest would silently yield ``${B}``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

_PATTERN = re.compile(
    r"\$(?:(?P<escape>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|(?P<bad>\{))"
)


# "$NAME" outside braces, and "$$" so that an escaped dollar is skipped over
_BARE = re.compile(r"\$(?:\$|\{|(?P<name>[A-Za-z_][A-Za-z0-9_]*))")
# what people write for a default in other tools: ${NAME-default}, ${NAME:default}, ${NAME=...}
_NEAR_MISS = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?[-=]|:)(?P<default>[^}]*)\}")
_SNIPPET_CHARS = 60


class SubstitutionError(ValueError):
    """A reference that cannot be substituted; ``offset`` is where it starts in the text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def substitute(text: str, environ: Mapping[str, str]) -> str:
    """Return ``text`` with every ``${...}`` reference replaced from ``environ``."""
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if match["escape"]:
            return "$"
        name = match["name"]
        if name is None:
            raise SubstitutionError(_invalid(text[match.start() :]), match.start())
        value = environ.get(name)
        default = match["default"]
        if default is not None and "${" in default:
            raise SubstitutionError(
                f"nested ${{...}} in a default is not supported: set {name}, or give a literal"
                f" default (${{{name}:-text}})",
                match.start("default") + default.index("${"),
            )
        if value and not _utf8(value):
            # Python keeps bytes that are not UTF-8 as lone surrogates: no request body, URL or
            # report line can carry them, so they stop here rather than half-way through a batch
            raise SubstitutionError(
                # its value is not shown: it may be a secret
                f"environment variable {name} holds bytes that are not UTF-8 text: set it to"
                " UTF-8 text",
                match.start(),
            )
        if default is not None:
            return value or default
        if value is None:
            raise SubstitutionError(
                f"environment variable {name} is not set: set it, or give a default"
                f" with ${{{name}:-default}}",
                match.start(),
            )
        return value

    return _PATTERN.sub(replace, text)


def _utf8(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def bare_references(text: str) -> list[tuple[int, str]]:
    """Where ``text`` holds ``$NAME`` without braces (sent literally), and the name."""
    if "$" not in text:
        return []
    return [(match.start(), match["name"]) for match in _BARE.finditer(text) if match["name"]]


def literal_warning(name: str) -> str:
    return (
        f"'${name}' is sent literally: only ${{{name}}} is substituted; write ${{{name}}} to "
        f"substitute it, or $${name} to keep the text (and this warning away)"
    )


def _invalid(rest: str) -> str:
    """The message for a ``${`` that starts no valid reference; ``rest`` starts there."""
    end = rest.find("}")
    snippet = rest[: end + 1] if end != -1 else rest
    if len(snippet) > _SNIPPET_CHARS:
        snippet = snippet[: _SNIPPET_CHARS - 1] + "…"
    message = f"'{snippet}' is not a valid substitution: write ${{NAME}} or ${{NAME:-default}}"
    near = _NEAR_MISS.match(rest)
    if near is not None:
        return f"{message} (here: ${{{near['name']}:-{near['default']}}})"
    hint = "" if end != -1 else "; the closing '}' is missing"
    return f"{message} (NAME: letters, digits and '_'), or $$ for a literal '$'{hint}"
