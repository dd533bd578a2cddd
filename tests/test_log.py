"""The log's redaction of credentials, and the Redactor the client scrubs server text with."""

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from batchrun import log
from batchrun.log import REDACTED, Redactor

JWT = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJhcm0ifQ.c2ln"
TOKEN = "opaque/secret+token-0123456789"


def test_a_redactor_blanks_the_secrets_registered_with_it_and_token_shapes() -> None:
    redactor = Redactor()
    redactor.register(TOKEN)
    redactor.register(TOKEN + "-longer")
    text = f"a {TOKEN}-longer b {TOKEN} c {JWT} d Bearer abc.def"
    assert redactor.text(text) == f"a {REDACTED} b {REDACTED} c {REDACTED} d Bearer {REDACTED}"
    assert TOKEN not in repr(redactor)


def test_a_redactor_ignores_strings_too_short_to_be_tokens() -> None:
    redactor = Redactor()
    redactor.register("")
    redactor.register("abc")
    assert redactor.text("abc abc") == "abc abc"


def test_a_redactor_scrubs_every_string_of_a_json_value() -> None:
    redactor = Redactor()
    redactor.register(TOKEN)
    value = {"a": [TOKEN, {TOKEN: JWT}], "n": 1, "none": None}
    assert redactor.value(value) == {"a": [REDACTED, {REDACTED: REDACTED}], "n": 1, "none": None}
    assert redactor.value(value, shapes=False) == {
        "a": [REDACTED, {REDACTED: JWT}],
        "n": 1,
        "none": None,
    }


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    log.configure(fmt="json", level="debug", stream=stream)
    yield stream
    structlog.reset_defaults()


def test_logged_values_are_scrubbed_nested_and_in_tracebacks(logged: io.StringIO) -> None:
    logger = log.get_logger("t")
    try:
        raise ValueError(f"server said Bearer {TOKEN}")
    except ValueError:
        logger.exception("failed", error={"message": f"got {JWT}"}, items=[JWT])
    logger.info("headers", authorization=f"Bearer {TOKEN}")
    text = logged.getvalue()
    assert TOKEN not in text
    assert JWT not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["error"] == {"message": f"got {REDACTED}"}
    assert first["items"] == [REDACTED]
    assert f"Bearer {REDACTED}" in first["exception"]
    assert second["authorization"] == REDACTED
