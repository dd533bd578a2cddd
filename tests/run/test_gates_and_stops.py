"""The pieces that decide holding back: a full pipeline queue's gate, and whose 401 it is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ServiceRequestError

from batchrun.arm.auth import CredentialTokens
from batchrun.errors import ApiError, AuthError
from batchrun.model import RunSpec
from batchrun.run.constants import QUEUE_BACKOFF_MIN_S, UNREACHABLE_AFTER
from batchrun.run.guard import NewerRun
from batchrun.run.queues import PipelineGates
from batchrun.run.stops import Stops
from tests.helpers.clock import FakeTime

if TYPE_CHECKING:
    from collections.abc import Iterator

LOAD = RunSpec(id="a", subscription="S", resource_group="rg", factory="f", pipeline="LoadOrders")
# ADF's names are case-insensitive: the same pipeline
LOAD_LOWER = RunSpec(
    id="b", subscription="s", resource_group="RG", factory="F", pipeline="loadorders"
)
OTHER = RunSpec(id="c", subscription="S", resource_group="rg", factory="f", pipeline="BuildMarts")


def queue_full(retry_after: float | None = None) -> ApiError:
    return ApiError(
        status=400, code="BadRequest", transient=True, sent=False, retry_after=retry_after,
        message="Pipeline execution throttled. If the concurrency value is set for a pipeline, "
        "a maximum of 100 runs will be queued for execution.",
    )  # fmt: skip


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def gates(time: FakeTime) -> PipelineGates:
    return PipelineGates(clock=time.monotonic, stall_s=600.0, open_at=8)


def test_a_refusal_holds_that_pipeline_only_until_its_backoff(
    gates: PipelineGates, time: FakeTime
) -> None:
    assert not gates.holds(LOAD)
    gates.refused(LOAD, 1, queue_full())
    assert gates.holds(LOAD_LOWER)
    assert not gates.holds(OTHER)
    assert gates.reopens_in(LOAD) == pytest.approx(QUEUE_BACKOFF_MIN_S)
    time.advance(QUEUE_BACKOFF_MIN_S)
    # one probe at a time, then twice as many for each run ADF takes
    assert not gates.holds(LOAD)
    gates.let_through(LOAD, 2)
    assert gates.holds(LOAD)
    assert not gates.may_send(LOAD, 99)  # a run that had its task before the refusal waits
    assert gates.may_send(LOAD, 2)
    gates.accepted(LOAD, 2)
    for token in (3, 4):
        assert not gates.holds(LOAD)
        gates.let_through(LOAD, token)
    assert gates.holds(LOAD)


def test_the_gate_opens_again_once_the_queue_keeps_taking_runs(
    gates: PipelineGates, time: FakeTime
) -> None:
    gates.refused(LOAD, 1, queue_full())
    time.advance(QUEUE_BACKOFF_MIN_S)
    for token in range(2, 6):
        gates.let_through(LOAD, token)
        gates.accepted(LOAD, token)
    assert gates.reopens_in(LOAD) == 0.0  # no gate any more
    assert not gates.holds(LOAD)


def test_refused_probes_back_off_and_retry_after_is_honoured(
    gates: PipelineGates, time: FakeTime
) -> None:
    gates.refused(LOAD, 1, queue_full())
    time.advance(QUEUE_BACKOFF_MIN_S)
    gates.let_through(LOAD, 2)
    gates.refused(LOAD, 2, queue_full())
    assert gates.reopens_in(LOAD) == pytest.approx(2 * QUEUE_BACKOFF_MIN_S)
    time.advance(2 * QUEUE_BACKOFF_MIN_S)
    gates.refused(LOAD, 3, queue_full(retry_after=7.0))
    assert gates.reopens_in(LOAD) == pytest.approx(7.0)


def test_a_queue_that_takes_nothing_for_the_retry_budget_fails_its_runs(
    gates: PipelineGates, time: FakeTime
) -> None:
    gates.refused(LOAD, 1, queue_full())
    time.advance(599)
    assert gates.stalled(LOAD) is None
    time.advance(1)
    stalled = gates.stalled(LOAD)
    assert stalled is not None
    assert "took no run for 600 s" in stalled.message
    assert "Pipeline execution throttled" in stalled.message
    assert not gates.holds(LOAD)  # handed out, to be failed without a request


def unauthorized(code: str, message: str = "The access token is invalid.") -> ApiError:
    return ApiError(status=401, code=code, message=message, sent=False)


def test_a_plain_401_stops_the_batch() -> None:
    stops = Stops()
    stops.answered("A", sent_at=1.0)
    assert stops.refused("B", unauthorized("InvalidAuthenticationToken"), sent_at=2.0)
    assert stops.token_refused is not None


def test_a_plain_401_another_subscription_accepted_since_is_that_subscriptions() -> None:
    stops = Stops()
    stops.answered("A", sent_at=3.0)
    assert not stops.refused("B", unauthorized("InvalidAuthenticationToken"), sent_at=2.0)
    assert stops.token_refused is None
    refusal = stops.refusal("B")
    assert refusal is not None
    assert "for subscription B only" in refusal.message
    assert stops.refusal("A") is None


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("InvalidAuthenticationTokenTenant", "The access token is from the wrong issuer."),
        ("InvalidAuthenticationToken", "The access token is from the wrong issuer 'x'."),
        ("InvalidAuthenticationToken", "Token tenant does not match the subscription's tenant."),
    ],
)
def test_a_tenant_401_stops_only_its_subscription(code: str, message: str) -> None:
    stops = Stops()
    assert not stops.refused("B", unauthorized(code, message), sent_at=1.0)
    assert stops.token_refused is None
    refusal = stops.refusal("b")
    assert refusal is not None and "AZURE_TENANT_ID" in refusal.message
    assert stops.all_refused(["A", "B"]) is None
    assert stops.all_refused(["B"]) is not None


def connection(code: str) -> ApiError:
    return ApiError(status=None, code=code, message="m", transient=True, sent=False)


def test_refused_connections_with_no_answer_ever_show_the_endpoint_unreachable() -> None:
    stops = Stops()
    for _ in range(UNREACHABLE_AFTER - 1):
        assert not stops.connection_failed(connection("ConnectionError"))
    assert stops.connection_failed(connection("ConnectionError"))
    error = stops.unreachable_error(not_sent=7)
    assert error is not None and "7 runs not sent" in str(error)


def test_connections_refused_after_an_answer_are_retried_as_usual() -> None:
    stops = Stops()
    stops.answered("A", sent_at=0.0)
    assert not any(stops.connection_failed(connection("ConnectionError")) for _ in range(10))
    assert not stops.connection_failed(connection("TlsCertificateError"))


def test_a_tls_failure_with_no_answer_ever_stops_at_once() -> None:
    assert Stops().connection_failed(connection("TlsCertificateError"))
    assert not Stops().connection_failed(connection("Timeout"))  # sent: maybe it answered


def test_whose_newer_run_by_when_it_started_on_the_servers_clock() -> None:
    ours_at = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    skew = timedelta(minutes=3)  # the server's clock runs ahead
    margin = timedelta(seconds=5)
    after = NewerRun("r", ours_at + skew + timedelta(seconds=1), skew)
    just_before = NewerRun("r", ours_at + skew - timedelta(seconds=2), skew)
    long_before = NewerRun("r", ours_at + skew - timedelta(minutes=1), skew)
    assert after.started_since(ours_at, margin=margin)
    assert just_before.started_since(ours_at, margin=margin)
    assert not long_before.started_since(ours_at, margin=margin)


class DownAfterFirst:
    """A credential whose endpoint fails once it has handed out a token, as azure-core does."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def get_token(self, *scopes: str, **_: object) -> AccessToken:
        self.calls += 1
        if self.calls > 1:
            raise self.error
        return AccessToken("token-1", 0)

    async def close(self) -> None:
        return None


def credential_errors() -> Iterator[Exception]:
    yield ServiceRequestError("Cannot connect to host 127.0.0.1:9 [Connection refused]")
    yield HttpResponseError(message="(500) the identity endpoint failed")


@pytest.mark.parametrize("error", list(credential_errors()), ids=["request", "response"])
async def test_any_credential_failure_mid_batch_is_an_auth_error(error: Exception) -> None:
    tokens = CredentialTokens(DownAfterFirst(error), "scope")
    assert await tokens.get_token() == "token-1"  # expired at once: the next call refreshes
    with pytest.raises(AuthError, match="no token for scope scope"):
        await tokens.get_token()
