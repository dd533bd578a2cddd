"""Subscriptions of another tenant: ARM refuses a token issued for the wrong directory.

A token names its issuer (``https://sts.windows.net/<tenant>/``); ARM compares it with the
tenant the subscription belongs to and answers 401 ``InvalidAuthenticationTokenTenant``, with
a ``WWW-Authenticate`` challenge whose ``authorization_uri`` names the right tenant (the way
clients discover which tenant to ask for a token). The emulator's tokens are opaque, so they
all count as issued by ``home_tenant``; a foreign subscription's tenant is derived from its id,
so the same subscription always names the same tenant.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from batchrun.emulator.wire import ArmError

if TYPE_CHECKING:
    from batchrun.emulator.config import Settings

__all__ = ["TenantCheck", "tenant_of"]

_TENANTS = uuid.uuid5(uuid.NAMESPACE_URL, "https://batchrun.invalid/emulator/tenants")


def tenant_of(subscription: str) -> str:
    """The tenant a foreign subscription belongs to (stable for a given id)."""
    return str(uuid.uuid5(_TENANTS, subscription.casefold()))


class TenantCheck:
    def __init__(self, settings: Settings) -> None:
        self._home = settings.home_tenant
        self._foreign = settings.foreign_subscriptions()

    def check(self, subscription: str) -> None:
        """Raise the 401 ARM answers when ``subscription`` belongs to another tenant."""
        if subscription.casefold() not in self._foreign:
            return
        other = tenant_of(subscription)
        message = (
            f"The access token is from the wrong issuer 'https://sts.windows.net/{self._home}/'. "
            f"It must match the tenant 'https://sts.windows.net/{other}/' associated with this "
            f"subscription. Please use the authority (URL) 'https://login.windows.net/{other}' "
            "to get the token. Note, if the subscription is transferred to another tenant there "
            "is no impact to the services, but information about new tenant could take time to "
            "propagate (up to an hour). If you just transferred your subscription and see this "
            "error message, please try back later."
        )
        challenge = (
            f'Bearer authorization_uri="https://login.windows.net/{other}", '
            'error="invalid_token", '
            'error_description="The access token is from the wrong issuer."'
        )
        raise ArmError(
            401,
            "InvalidAuthenticationTokenTenant",
            message,
            headers={"WWW-Authenticate": challenge},
        )
