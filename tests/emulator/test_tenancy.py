"""Subscriptions of another tenant answer 401 InvalidAuthenticationTokenTenant, as ARM does."""

from __future__ import annotations

import re

import pytest

from batchrun.emulator.config import HOME_TENANT, parse_config
from batchrun.emulator.tenancy import tenant_of
from tests.emulator.helpers import AdfFor, cloud_error

FOREIGN = "33333333-3333-3333-3333-333333333333"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/pipelines/p/createRun"),
        ("POST", "/queryPipelineRuns"),
        ("GET", "/pipelineruns/r"),
        ("POST", "/pipelineruns/r/cancel"),
        ("GET", "/pipelines/p"),
    ],
)
async def test_every_request_to_a_foreign_subscription_is_401(
    adf_for: AdfFor, method: str, path: str
) -> None:
    adf, served = await adf_for(foreign_tenant_subscriptions=f"x, {FOREIGN}")
    other = tenant_of(FOREIGN)
    status, body, headers = await adf.call(method, path, body={}, sub=FOREIGN.upper())
    error = cloud_error((status, body), 401)
    assert error["code"] == "InvalidAuthenticationTokenTenant"
    assert error["message"].startswith(
        f"The access token is from the wrong issuer 'https://sts.windows.net/{HOME_TENANT}/'. "
        f"It must match the tenant 'https://sts.windows.net/{other}/' associated with this "
        f"subscription. Please use the authority (URL) 'https://login.windows.net/{other}' "
        "to get the token."
    )
    challenge = headers["WWW-Authenticate"]
    assert re.match(
        r'^Bearer authorization_uri="https://login\.windows\.net/([0-9a-f-]{36})"', challenge
    )
    assert f"login.windows.net/{other}" in challenge
    assert 'error="invalid_token"' in challenge
    assert served.state.stats.runs_created == 0


async def test_other_subscriptions_are_served(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(foreign_tenant_subscriptions=FOREIGN)
    assert (await adf.create("p"))[0] == 200


async def test_a_missing_token_is_still_the_first_answer(adf_for: AdfFor) -> None:
    adf, _ = await adf_for(foreign_tenant_subscriptions=FOREIGN)
    status, body, _ = await adf.call(
        "POST", "/pipelines/p/createRun", body={}, headers={"Authorization": ""}, sub=FOREIGN
    )
    assert cloud_error((status, body), 401)["code"] == "AuthenticationFailed"


def test_a_config_file_may_list_them() -> None:
    config = parse_config(
        {"accept_any": True, "settings": {"foreign_tenant_subscriptions": [FOREIGN, "s2"]}},
        source="emulator.yaml",
    )
    assert config.settings["foreign_tenant_subscriptions"] == f"{FOREIGN},s2"
