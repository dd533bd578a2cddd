"""No credentials: one line naming what was tried and the fix, fitted to the environment."""

from __future__ import annotations

import pytest

from batchrun.arm.auth import chain_explanation

SCOPE = "https://management.azure.com/.default"
CHAIN = (
    "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
    "Attempted credentials:\n"
    "\tEnvironmentCredential: EnvironmentCredential authentication unavailable. Environment "
    "variables are not fully configured.\n"
    "\tManagedIdentityCredential: ManagedIdentityCredential authentication unavailable.\n"
    "\tAzureCliCredential: Azure CLI not found on path\n"
    "To mitigate this issue, please refer to the troubleshooting guidelines here at "
    "https://aka.ms/azsdk/python/identity/defaultazurecredential/troubleshoot."
)


@pytest.mark.parametrize(
    ("environ", "fix"),
    [
        ({}, "Fix: sign in with `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and "),
        ({}, "for the local emulator set IDENTITY_ENDPOINT and IDENTITY_HEADER"),
        ({"IDENTITY_ENDPOINT": "http://127.0.0.1:8765/msi/token"}, "Fix: set IDENTITY_HEADER too"),
        ({"IDENTITY_HEADER": "s"}, "Fix: set IDENTITY_ENDPOINT too"),
        (
            {"IDENTITY_ENDPOINT": "http://127.0.0.1:1/msi/token", "IDENTITY_HEADER": "s"},
            "Fix: IDENTITY_ENDPOINT=http://127.0.0.1:1/msi/token gave no token",
        ),
    ],
)
def test_the_first_line_names_what_was_tried_and_the_fix(environ: dict[str, str], fix: str) -> None:
    lead, *rest = chain_explanation(SCOPE, CHAIN, environ).splitlines()
    assert lead.startswith(
        f"no token for scope {SCOPE}: tried environment variables, managed identity, Azure CLI; "
        "none gave one. "
    )
    assert fix in lead
    assert rest == [
        "  EnvironmentCredential: Environment variables are not fully configured.",
        "  ManagedIdentityCredential: ManagedIdentityCredential authentication unavailable.",
        "  AzureCliCredential: Azure CLI not found on path",
    ]
