"""The real azure-mgmt-datafactory SDK (azure.core, aio) against the emulator over https.

Every operation batchrun uses, as the SDK sends it, and the SDK seeing the refusals real ADF
sends. The emulator runs in-process on 127.0.0.1 with a ManualClock and a throwaway CA
(trustme): azure-core's bearer-token policy refuses to send a token over plain http.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import trustme
from aiohttp.test_utils import TestServer
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.datafactory.aio import DataFactoryManagementClient
from azure.mgmt.datafactory.models import RunFilterParameters, RunQueryFilter, RunQueryOrderBy

from batchrun.emulator.app import STATE, build_app
from batchrun.emulator.clock import ManualClock
from batchrun.emulator.config import Settings
from tests.helpers.emulator_http import FACTORY, RG, SUB, sales_eu, topology

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from batchrun.emulator.state import EmulatorState

CONFIG = sales_eu("""
LoadOrders:
  parameters: {region: {type: String, defaultValue: eu}, partition: {type: Int}}
  concurrency: 3
BuildMarts: {}
""")
AFTER = datetime(2000, 1, 1, tzinfo=UTC)
BEFORE = datetime(2100, 1, 1, tzinfo=UTC)
RUN_GROUP_SINGLE = (
    "Filter operand 'RunGroupId' does not support and array of values. "
    "Make sure to provide only one."
)


class StaticToken:
    """An AsyncTokenCredential answering one token (the emulator accepts any)."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("sdk-token", int(time.time()) + 3600)

    async def close(self) -> None:
        return None


@dataclass
class Peer:
    client: DataFactoryManagementClient
    state: EmulatorState
    clock: ManualClock


@pytest.fixture
def ca_file(tmp_path: Path) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@pytest.fixture
async def peer_for(
    ca_file: tuple[trustme.CA, Path],
) -> AsyncIterator[Callable[..., Awaitable[Peer]]]:
    ca, path = ca_file
    servers: list[TestServer] = []
    clients: list[DataFactoryManagementClient] = []

    async def start(**settings: Any) -> Peer:
        clock = ManualClock()
        app = build_app(Settings(quiet=True, **settings), topology(CONFIG), clock=clock)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server(ssl=context)
        servers.append(server)
        client = DataFactoryManagementClient(
            StaticToken(),  # type: ignore[arg-type]
            SUB,
            base_url=str(server.make_url("")).rstrip("/"),
            connection_verify=str(path),
            retry_total=0,
        )
        clients.append(client)
        return Peer(client, app[STATE], clock)

    yield start
    for client in clients:
        await client.close()
    for server in servers:
        await server.close()


def window(*filters: RunQueryFilter, **extra: Any) -> RunFilterParameters:
    return RunFilterParameters(
        last_updated_after=AFTER, last_updated_before=BEFORE, filters=list(filters), **extra
    )


async def test_create_run_plain_and_as_a_recovery(peer_for: Callable[..., Awaitable[Peer]]) -> None:
    peer = await peer_for()
    client = peer.client
    first = await client.pipelines.create_run(RG, FACTORY, "LoadOrders", {"partition": 4})
    run = await client.pipeline_runs.get(RG, FACTORY, first.run_id)
    assert run.pipeline_name == "LoadOrders"
    assert run.parameters == {"partition": "4", "region": "eu"}
    assert run.status == "Queued"
    again = await client.pipelines.create_run(
        RG, FACTORY, "loadorders", reference_pipeline_run_id=first.run_id, is_recovery=True
    )
    assert again.run_id != first.run_id
    rerun = await client.pipeline_runs.get(RG, FACTORY, again.run_id)
    assert rerun.run_group_id == first.run_id
    assert rerun.is_latest is True
    assert rerun.parameters == run.parameters
    assert (await client.pipeline_runs.get(RG, FACTORY, first.run_id)).is_latest is False
    assert peer.state.stats.runs_created == 2


async def test_query_by_factory_filters_and_follows_the_continuation_token(
    peer_for: Callable[..., Awaitable[Peer]],
) -> None:
    peer = await peer_for()
    client = peer.client
    created = {
        (await client.pipelines.create_run(RG, FACTORY, "BuildMarts", {"i": i})).run_id
        for i in range(130)
    }
    await client.pipelines.create_run(RG, FACTORY, "LoadOrders", {"partition": 1})
    marts = RunQueryFilter(
        operand="PipelineName", operator="Equals", values_property=["buildmarts"]
    )
    filters = window(marts, order_by=[RunQueryOrderBy(order_by="RunStart", order="ASC")])
    seen: list[str] = []
    pages = 0
    for _ in range(10):
        page = await client.pipeline_runs.query_by_factory(RG, FACTORY, filters)
        pages += 1
        seen += [str(run.run_id) for run in page.value]
        if not page.continuation_token:
            break
        filters.continuation_token = page.continuation_token
    else:
        raise AssertionError("queryPipelineRuns still had a continuationToken after 10 pages")
    assert pages == 2
    assert len(seen) == len(set(seen)) and set(seen) == created
    group = RunQueryFilter(operand="RunGroupId", operator="Equals", values_property=[seen[0]])
    [only] = (await client.pipeline_runs.query_by_factory(RG, FACTORY, window(group))).value
    assert only.run_id == seen[0]


async def test_cancel_moves_a_run_to_cancelled(peer_for: Callable[..., Awaitable[Peer]]) -> None:
    peer = await peer_for(cancel_ms=1000)
    client = peer.client
    run_id = (await client.pipelines.create_run(RG, FACTORY, "BuildMarts")).run_id
    await client.pipeline_runs.cancel(RG, FACTORY, run_id, is_recursive=True)
    assert (await client.pipeline_runs.get(RG, FACTORY, run_id)).status == "Canceling"
    peer.clock.advance(1)
    assert (await client.pipeline_runs.get(RG, FACTORY, run_id)).status == "Cancelled"


async def test_pipelines_get_reads_parameters_and_concurrency(
    peer_for: Callable[..., Awaitable[Peer]],
) -> None:
    peer = await peer_for()
    pipeline = await peer.client.pipelines.get(RG, FACTORY, "LOADORDERS")
    assert pipeline is not None
    assert pipeline.name == "LoadOrders"
    assert pipeline.concurrency == 3
    assert pipeline.parameters["region"].type == "String"
    assert pipeline.parameters["region"].default_value == "eu"
    assert pipeline.parameters["partition"].type == "Int"
    assert pipeline.etag


async def test_refusals_reach_the_sdk_as_real_adf_sends_them(
    peer_for: Callable[..., Awaitable[Peer]],
) -> None:
    peer = await peer_for(single_run_group_filter=True)
    client = peer.client
    one = (await client.pipelines.create_run(RG, FACTORY, "BuildMarts")).run_id
    two = (await client.pipelines.create_run(RG, FACTORY, "BuildMarts")).run_id

    groups = RunQueryFilter(operand="RunGroupId", operator="In", values_property=[one, two])
    with pytest.raises(HttpResponseError) as caught:
        await client.pipeline_runs.query_by_factory(RG, FACTORY, window(groups))
    assert caught.value.status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.message == RUN_GROUP_SINGLE

    by_update = window(order_by=[RunQueryOrderBy(order_by="LastUpdated", order="DESC")])
    with pytest.raises(HttpResponseError) as caught:
        await client.pipeline_runs.query_by_factory(RG, FACTORY, by_update)
    assert caught.value.status_code == 400

    for call in (
        client.pipelines.get(RG, FACTORY, "LoadNothing"),
        client.pipelines.create_run(RG, FACTORY, "LoadNothing"),
    ):
        with pytest.raises(ResourceNotFoundError) as missing:
            await call
        assert missing.value.status_code == 404
    assert peer.state.stats.runs_created == 2


async def test_a_full_queue_refuses_create_run_through_the_sdk(
    peer_for: Callable[..., Awaitable[Peer]],
) -> None:
    peer = await peer_for(queue_cap=1, run_queued_ms=0, queue_refusal_status=429)
    client = peer.client
    for _ in range(4):  # 3 InProgress (the pipeline's concurrency), 1 Queued
        await client.pipelines.create_run(RG, FACTORY, "LoadOrders")
    with pytest.raises(HttpResponseError) as caught:
        await client.pipelines.create_run(RG, FACTORY, "LoadOrders")
    assert caught.value.status_code == 429
    assert "Pipeline execution throttled" in str(caught.value.message)
    assert peer.state.stats.runs_created == 4
