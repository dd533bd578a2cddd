"""ARM's tracing headers: a correlation id of its own unless the caller sends one."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.helpers.emulator_http import AdfFor


async def test_the_correlation_id_is_not_the_client_request_id(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(correlation_from_client_request_id=False)
    _, _, headers = await adf.create("p", headers={"x-ms-client-request-id": "abc-123"})
    assert headers["x-ms-correlation-request-id"] != "abc-123"
    assert uuid.UUID(headers["x-ms-correlation-request-id"])
    assert headers["x-ms-client-request-id"] == "abc-123"


async def test_a_correlation_id_sent_is_echoed(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(correlation_from_client_request_id=False)
    sent = {"x-ms-client-request-id": "abc-123", "x-ms-correlation-request-id": "corr-9"}
    _, _, headers = await adf.create("p", headers=sent)
    assert headers["x-ms-correlation-request-id"] == "corr-9"
    assert headers["x-ms-request-id"] not in ("corr-9", "abc-123")


async def test_the_older_habit_reuses_the_client_request_id(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(correlation_from_client_request_id=True)
    _, _, headers = await adf.create("p", headers={"x-ms-client-request-id": "abc-123"})
    assert headers["x-ms-correlation-request-id"] == "abc-123"
