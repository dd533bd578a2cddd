"""``${VAR}`` and ``${VAR:-default}`` substitution in manifest strings; ``$$`` is a literal ``$``.

Like the shell, ``${VAR:-default}`` uses the default when ``VAR`` is unset *or* empty. A ``$``
followed by anything else is kept as it is, so ``^sales$`` needs no escaping. The result is
always a string: substitution never turns text into a number or a boolean.

A default is literal text up to the first ``}``: ``${A:-x}}`` is ``x}`` (as in the shell, so
``{"n": ${N:-1}}`` works). A default cannot hold a reference: ``${A:-${B}}`` is an error at the
inner ``${``, where a reader that does not nest would silently yield ``${B}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_PATTERN = re.compile(
    r"\$(?:(?P<escape>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|(?P<bad>\{))"
)


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
            snippet = text[match.start() :].split("}", 1)[0][:40]
            raise SubstitutionError(
                f"'{snippet}' is not a valid substitution: write ${{NAME}} or ${{NAME:-default}}"
                " (NAME: letters, digits and '_'), or $$ for a literal '$'",
                match.start(),
            )
        value = environ.get(name)
        default = match["default"]
        if default is not None and "${" in default:
            raise SubstitutionError(
                f"nested ${{...}} in a default is not supported: set {name}, or give a literal"
                f" default (${{{name}:-text}})",
                match.start("default") + default.index("${"),
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
