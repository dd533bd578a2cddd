"""Redaction is part of logging as configured, in both renderers: whatever logs a credential,
through whichever processor chain ``log.configure`` builds, the rendered line does not hold it."""

from __future__ import annotations

import io
import json
import re
from typing import TYPE_CHECKING

import pytest
import structlog

from batchrun import log
from batchrun.log import REDACTED, Redactor

if TYPE_CHECKING:
    from collections.abc import Iterator

JWT = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJhcm0ifQ.c2ln"
OPAQUE = "opaque-secret-0123456789"


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_both_renderers_get_redacted_events(fmt: log.LogFormat) -> None:
    stream = io.StringIO()
    log.configure(fmt=fmt, level="info", stream=stream)
    logger = log.get_logger("t")
    logger.info("sent", header=f"Bearer {OPAQUE}", body={"note": JWT}, client_secret=OPAQUE)
    logger.info(f"answer was {JWT}")
    text = stream.getvalue()
    assert OPAQUE not in text
    assert JWT not in text
    assert text.count(REDACTED) == 4


def test_fields_named_like_credentials_are_blanked_whatever_their_value() -> None:
    event = log.redact(None, "info", {"event": "e", "Password": 1, "access_token": ["x"]})
    assert event == {"event": "e", "Password": REDACTED, "access_token": REDACTED}


def test_other_fields_keep_their_values_and_types() -> None:
    event = log.redact(None, "info", {"event": "token refreshed", "n": 3, "items": ("a", None)})
    assert event == {"event": "token refreshed", "n": 3, "items": ["a", None]}


def test_a_secret_of_the_shortest_registered_length_is_blanked() -> None:
    redactor = Redactor()
    redactor.register("12345678")  # eight characters: the shortest a secret may be
    redactor.register("1234567")  # seven: too short to blank without garbling messages
    assert redactor.text("a 12345678 b 1234567") == f"a {REDACTED} b 1234567"


def test_a_secret_inside_a_longer_one_does_not_leave_the_longer_ones_rest() -> None:
    redactor = Redactor()
    short, longer = "zz-token-0123", "aa-zz-token-0123"  # the longer sorts first by letters
    redactor.register(short)
    redactor.register(longer)
    assert redactor.text(f"{longer} {short}") == f"{REDACTED} {REDACTED}"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_off_a_terminal_and_coloured_console_lines_on_one() -> None:
    piped, terminal = io.StringIO(), Terminal()
    log.configure(stream=piped)
    log.get_logger("t").info("hello", n=1)
    event = json.loads(piped.getvalue())
    assert (event["event"], event["n"], event["level"]) == ("hello", 1, "info")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", event["timestamp"])
    log.configure(stream=terminal)
    log.get_logger("t").info("hello", n=1)
    line = terminal.getvalue()
    assert "hello" in line and "\x1b[" in line
    with pytest.raises(ValueError):
        json.loads(line)


@pytest.mark.parametrize(
    ("level", "shown"), [("info", ["info", "warning"]), ("WARNING", ["warning"])]
)
def test_the_level_filters_what_is_logged(level: str, shown: list[str]) -> None:
    stream = io.StringIO()
    log.configure(fmt="json", level=level, stream=stream)
    logger = log.get_logger("t")
    logger.debug("d")
    logger.info("i")
    logger.warning("w")
    assert [json.loads(line)["level"] for line in stream.getvalue().splitlines()] == shown


def test_info_is_the_default_level() -> None:
    stream = io.StringIO()
    log.configure(fmt="json", stream=stream)
    log.get_logger("t").debug("hidden")
    log.get_logger("t").info("shown")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["shown"]


def test_a_logger_made_before_configure_follows_the_latest_configuration() -> None:
    # modules make their loggers at import, before the CLI configures logging
    logger = log.get_logger("t")
    first, second = io.StringIO(), io.StringIO()
    log.configure(fmt="json", stream=first)
    logger.info("one")
    log.configure(fmt="json", stream=second)
    logger.info("two")
    assert "one" in first.getvalue() and "two" not in first.getvalue()
    assert "two" in second.getvalue()


def test_a_key_is_judged_the_same_each_time_it_is_logged() -> None:
    # the verdict on a key is kept after its first use: a kept verdict must be the same one
    for _ in range(2):
        event = log.redact(None, "", {"client_secret": "s3cr3t-value", "count": 3, "x": None})
        assert event == {"client_secret": REDACTED, "count": 3, "x": None}


def test_keys_past_the_kept_ones_are_still_judged() -> None:
    # keys made from data would fill the kept verdicts: the ones after are judged each time
    log.redact(None, "", {f"field_{n}": n for n in range(2000)})
    event = log.redact(None, "", {"late_token_2000": "abc", "field_1999": "abc"})
    assert event == {"late_token_2000": REDACTED, "field_1999": "abc"}


def test_a_jwt_in_a_logged_text_is_still_blanked() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    event = log.redact(None, "", {"message": f"got {jwt} back"})
    assert event == {"message": f"got {REDACTED} back"}


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "BeArEr"])
def test_a_bearer_value_is_blanked_however_the_scheme_is_spelled(scheme: str) -> None:
    # RFC 9110: an authentication scheme's name is case-insensitive
    event = log.redact(None, "", {"header": f"{scheme} {OPAQUE}", "nested": [f"{scheme} {OPAQUE}"]})
    assert event == {"header": f"{scheme} {REDACTED}", "nested": [f"{scheme} {REDACTED}"]}
