"""structlog configuration (the only global state batchrun has), and the redaction of secrets.

Console rendering on a TTY, one JSON object per line otherwise (container logs). On a TTY a
:class:`LiveLine` (``batchrun run``'s progress) may sit at the bottom of the terminal: log lines
are printed above it, and it is redrawn below them, so neither glues onto the other. A processor
redacts anything that looks like a credential before it is rendered, whatever logged it. What it
cannot know, the exact tokens in use, a :class:`Redactor` knows: the client registers each token
it sends and scrubs every text a server sends back before it becomes an error, a log or a report.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO

# structlog imports rich, where it is installed, to draw the console tracebacks of an `exc_info`;
# batchrun's logs never hand it one (`format_exc_info` below makes every traceback text first),
# yet importing rich is ~0.1 s of every start-up (it comes with import-linter and many tools).
# Hidden only while structlog is imported: anything that imports rich later gets it.
_HIDE_RICH = "rich" not in sys.modules
if _HIDE_RICH:
    sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` raises ImportError
try:
    import structlog
finally:
    if _HIDE_RICH:
        del sys.modules["rich"]

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping

LogFormat = Literal["console", "json"]

_SECRET_KEYS = re.compile(r"authorization|token|secret|password|credential", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9\-._~+/=]+", re.IGNORECASE)
# A JWT (header.payload.signature, base64url): what an Entra ID access token looks like.
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")
# Shorter strings are not registered: blanking every "abc" would garble messages, and real access
# tokens are hundreds of characters long.
_MIN_SECRET_CHARS = 8
REDACTED = "[redacted]"


def redact_shapes(text: str) -> str:
    """``text`` with every JWT and every ``Bearer …`` value replaced by ``[redacted]``."""
    if "eyJ" in text:  # every JWT match starts so: most texts need no regular expression
        text = _JWT.sub(REDACTED, text)
    if "earer" in text or "EARER" in text.upper():  # the scheme's name is case-insensitive
        text = _BEARER.sub(rf"\1{REDACTED}", text)
    return text


class Redactor:
    """The secrets in use (bearer tokens, as they are sent) and the scrubbing of what may hold them.

    One per client, not a global: it knows exactly the tokens this process sent. Scrub text only
    after decoding it (JSON, HTML), or an escaped echo (``\\u0065yJ…``) would slip through.
    """

    __slots__ = ("_secrets",)

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Redactor(secrets={len(self._secrets)})"

    def register(self, secret: str) -> None:
        if len(secret) < _MIN_SECRET_CHARS or secret in self._secrets:
            return
        # longest first, so a secret that contains another is blanked whole
        self._secrets = tuple(sorted((*self._secrets, secret), key=len, reverse=True))

    def text(self, text: str) -> str:
        """``text`` without the registered secrets, JWTs or bearer values."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return redact_shapes(text)

    def known(self, text: str) -> str:
        """``text`` without the registered secrets only: for data that must stay as sent (run
        parameters are compared with the manifest's), where a JWT-shaped value is legitimate."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def value(self, value: Any, *, shapes: bool = True) -> Any:
        """A decoded JSON value with every string in it (keys too) scrubbed."""
        scrub = self.text if shapes else self.known
        if isinstance(value, str):
            return scrub(value)
        if isinstance(value, dict):
            return {scrub(k): self.value(v, shapes=shapes) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item, shapes=shapes) for item in value]
        return value


class _KeyJudge(dict[str, bool]):
    """``judge(key)`` for each key, computed on first use and kept (for at most ``keep`` keys,
    should some caller log keys made from data)."""

    def __init__(self, judge: Callable[[str], bool], *, keep: int = 1024) -> None:
        super().__init__()
        self._judge = judge
        self._keep = keep

    def __missing__(self, key: str) -> bool:
        verdict = self._judge(key)
        if len(self) < self._keep:
            self[key] = verdict
        return verdict


def _scrub_logged(value: Any) -> Any:
    if isinstance(value, str):
        return redact_shapes(value)
    if isinstance(value, dict):
        return {key: _scrub_logged(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_logged(item) for item in value]
    return value


def _secret_key(key: str) -> bool:
    return bool(_SECRET_KEYS.search(key)) and key != "event"


# the keys logged are a few dozen names, logged again and again (one line per run): judged once
_SECRET_KEY: Final = _KeyJudge(_secret_key)


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    secret = _SECRET_KEY
    # values are replaced, never added or removed: the dict can be walked as it is
    for key, value in event.items():
        if secret[key]:
            event[key] = REDACTED
        elif type(value) is str:
            event[key] = redact_shapes(value)
        elif type(value) is not int and value is not None:  # the usual values that hold no text
            event[key] = _scrub_logged(value)
    return event


# erase the terminal's current line and go to its start
_CLEAR_LINE = "\r\x1b[2K"


class LiveLine:
    """A status line redrawn in place at the bottom of a terminal, and the log stream that
    writes each log line above it (the log writes through :meth:`write`)."""

    __slots__ = ("__weakref__", "_out", "_shown")  # structlog keeps a weak reference

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._shown = ""

    @property
    def out(self) -> TextIO:
        return self._out

    def show(self, line: str) -> None:
        self._shown = line
        self._out.write(_CLEAR_LINE + line)
        self._out.flush()

    def clear(self) -> None:
        if self._shown:
            self._shown = ""
            self._out.write(_CLEAR_LINE)
            self._out.flush()

    def write(self, text: str) -> int:
        if self._shown:
            self._out.write(_CLEAR_LINE + text + self._shown)
        else:
            self._out.write(text)
        return len(text)

    def flush(self) -> None:
        self._out.flush()


_live: LiveLine | None = None


def live_line(stream: TextIO) -> LiveLine:
    """The live line on ``stream``: the one the log writes through when it is the log's."""
    if _live is not None and _live.out is stream:
        return _live
    return LiveLine(stream)


@functools.cache
def _json_encoder(default: Callable[[Any], Any]) -> json.JSONEncoder:
    return json.JSONEncoder(default=default)


def _json_line(event: Any, *, default: Callable[[Any], Any]) -> str:
    # json.dumps(event, default=default), structlog's call, builds an encoder for every line
    return _json_encoder(default).encode(event)


def configure(
    *, fmt: LogFormat | None = None, level: str = "info", stream: TextIO | None = None
) -> None:
    global _live
    out = stream or sys.stderr
    if fmt is None:
        fmt = "console" if out.isatty() else "json"
    _live = LiveLine(out)
    renderer: structlog.typing.Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_json_line)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # after the traceback is text, so that an exception's message is scrubbed too
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(_live),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
