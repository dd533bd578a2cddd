"""ARM's global buckets are per subscription, shared by all the principals calling it."""

from __future__ import annotations

from tests.helpers.emulator_http import AdfFor, cloud_error

GLOBAL_WRITES = "x-ms-ratelimit-remaining-subscription-global-writes"
GLOBAL_READS = "x-ms-ratelimit-remaining-subscription-global-reads"
WRITES = "x-ms-ratelimit-remaining-subscription-writes"


async def test_the_global_write_bucket_is_per_subscription(adf_for: AdfFor) -> None:
    adf, served = await adf_for(global_bucket_per_subscription=True, write_burst=1, write_refill=1)
    for n in range(15):  # 15 principals, one write each: the subscription's global 15 are gone
        status, _, headers = await adf.as_principal(f"principal-{n}").create("p")
        assert status == 200
        assert headers[WRITES] == "0"
        assert headers[GLOBAL_WRITES] == str(14 - n)
    status, body, headers = await adf.as_principal("principal-15").create("p")
    error = cloud_error((status, body), 429)
    assert error["code"] == "SubscriptionRequestsThrottled"
    assert "from all actors exceeded the global limit" in error["message"]
    assert headers[WRITES] == "1"  # this principal's own bucket was full
    # another subscription has its own global bucket
    status, _, headers = await adf.as_principal("principal-15").create("p", sub="other-sub")
    assert status == 200
    assert headers[GLOBAL_WRITES] == "14"
    served.manual_clock.advance(1)
    assert (await adf.as_principal("principal-15").create("p"))[0] == 200


async def test_a_principal_has_its_own_bucket_within_a_subscription(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(global_bucket_per_subscription=True, write_burst=1, write_refill=1)
    assert (await adf.create("p"))[0] == 200
    assert (await adf.create("p"))[0] == 429
    assert (await adf.as_principal("someone-else").create("p"))[0] == 200


async def test_reads_report_the_global_read_bucket(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(global_bucket_per_subscription=True, read_burst=2, read_refill=1)
    run_id = await adf.run_id("p")
    seen = []
    for n in range(3):
        _, _, headers = await adf.as_principal(f"reader-{n}").call("GET", f"/pipelineruns/{run_id}")
        seen.append(headers[GLOBAL_READS])
    assert seen == ["29", "28", "27"]
    _, _, headers = await adf.call("GET", f"/pipelineruns/{run_id}", sub="other-sub")
    assert headers[GLOBAL_READS] == "29"


async def test_the_older_model_keeps_one_global_write_bucket(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(global_bucket_per_subscription=False, write_burst=1, write_refill=1)
    _, _, headers = await adf.create("p", sub="sub-a")
    assert headers[GLOBAL_WRITES] == "14"
    _, _, headers = await adf.as_principal("other").create("p", sub="sub-b")
    assert headers[GLOBAL_WRITES] == "13"
