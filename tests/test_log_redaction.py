"""Redaction is part of logging as configured, in both renderers: whatever logs a credential,
through whichever processor chain ``log.configure`` builds, the rendered line does not hold it."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import structlog

from batchrun import log
from batchrun.log import REDACTED

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
