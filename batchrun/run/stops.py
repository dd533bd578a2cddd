"""What stops sending, and for whom: the whole batch, or one subscription.

- **The token is bad** (a 401 ``InvalidAuthenticationToken``/``ExpiredAuthenticationToken``
  without a tenant hint, or the credential cannot give a token mid-batch): the same token goes
  to every subscription, so the batch stops; runs not sent get no line, ``--resume`` sends them.
  Unless the 401 is evidently this subscription's: another subscription accepted a request
  that left *after* the refused one (the same token, later, and still good), and then it is
  handled as below, with ARM's own words.
- **Another tenant** (:func:`batchrun.arm.answers.is_wrong_tenant`): the token is good, but not
  for that subscription. That subscription stops: each of its runs gets a ``failed`` line that
  names the tenant and the fix; the others go on. Only when every subscription of the batch was
  refused so does the batch count as not authenticated (exit 3).
- **ARM asks a subscription to wait longer than a run may retry** (a 429 whose
  ``Retry-After`` is beyond ``--max-retry-time``: 999999 s, a date in 2099): a run that would
  have to wait longer than its budget leaves fails at once with that answer, not sent, rather
  than each waiting out its whole budget in turn.
- **The endpoint cannot be reached**: nothing ever answered, and connections are refused, time
  out or fail TLS (``UNREACHABLE_AFTER`` of them, a TLS failure at once). Retrying each run
  would cost the night, so the batch stops with one message; runs not sent get no line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchrun.arm.answers import is_wrong_tenant, tenant_named
from batchrun.errors import ApiError, AuthError, UnreachableError
from batchrun.run.constants import UNREACHABLE_AFTER

if TYPE_CHECKING:
    from collections.abc import Iterable

# transport failures that prove no connection was made; a refusal of every one, from an
# endpoint that never answered, is a wrong host, port or trust store, not a passing blip
_NO_CONNECTION = frozenset({"ConnectionError", "ConnectTimeout", "TlsCertificateError"})


class Stops:
    """The stops of one batch: the token's, a subscription's, and the endpoint's."""

    def __init__(self) -> None:
        self.token_refused: ApiError | None = None
        """The answer (or credential failure) that stopped the batch: the token is bad."""
        self.unreachable: ApiError | None = None
        """The connection failure that stopped the batch: the endpoint never answered."""
        self._refused: dict[str, ApiError] = {}
        self._accepted_sent_at: dict[str, float] = {}
        self._answered = False
        self._no_connection = 0
        self._paused: dict[str, tuple[float, ApiError]] = {}

    # --- what came back ----------------------------------------------------------------------

    def answered(self, subscription: str, *, sent_at: float) -> None:
        """ARM answered a request that left at ``sent_at`` with anything but a 401."""
        self._answered = True
        key = subscription.casefold()
        self._accepted_sent_at[key] = max(self._accepted_sent_at.get(key, sent_at), sent_at)

    def refused(self, subscription: str, error: ApiError, *, sent_at: float) -> bool:
        """A 401 for ``subscription``; True when it stops the whole batch."""
        self._answered = True
        key = subscription.casefold()
        if not is_wrong_tenant(error) and not self._accepted_elsewhere(key, sent_at):
            if self.token_refused is None:
                self.token_refused = error
            return True
        self._refused.setdefault(key, _explained(subscription, error))
        return False

    def throttled(self, subscription: str, error: ApiError, *, now: float) -> None:
        """A 429 for ``subscription``: ARM wants no request before its Retry-After."""
        if error.retry_after is None:
            return
        key = subscription.casefold()
        until = now + error.retry_after
        if key not in self._paused or self._paused[key][0] < until:
            self._paused[key] = (until, error)

    def paused_beyond(self, subscription: str, *, now: float, left_s: float) -> ApiError | None:
        """The failed line's error when ARM asked ``subscription`` to wait longer than the
        ``left_s`` seconds a run may still retry for."""
        until, error = self._paused.get(subscription.casefold(), (0.0, None))
        if error is None or until - now <= left_s:
            return None
        return ApiError(
            status=None,
            code=error.code,
            message=(
                f"not sent: ARM asked subscription {subscription} to wait {until - now:.0f} s "
                f"more (Retry-After), beyond what --max-retry-time leaves ({left_s:.0f} s): "
                f"{error.message}"
            ),
            request_id=error.request_id,
            correlation_id=error.correlation_id,
            sent=False,
        )

    def credential_failed(self, error: AuthError) -> None:
        """No token could be had mid-batch: no request can be sent any more."""
        if self.token_refused is None:
            self.token_refused = ApiError(
                status=None,
                code="NoToken",
                message=f"the credential gave no new token mid-batch: {error}",
                transient=False,
                sent=False,
            )

    def connection_failed(self, error: ApiError) -> bool:
        """A transport failure; True when it shows the endpoint unreachable (stop the batch)."""
        if self._answered or error.status is not None or error.code not in _NO_CONNECTION:
            return False
        self._no_connection += 1
        if error.code == "TlsCertificateError" or self._no_connection >= UNREACHABLE_AFTER:
            if self.unreachable is None:
                self.unreachable = error
            return True
        return False

    # --- what they mean ----------------------------------------------------------------------

    def refusal(self, subscription: str) -> ApiError | None:
        """Why ``subscription``'s runs are not sent any more, if they are not: the error of
        their ``failed`` line (no status: this run was not sent)."""
        error = self._refused.get(subscription.casefold())
        if error is None:
            return None
        return ApiError(
            status=None, code=error.code, message=f"not sent: {error.message}", sent=False
        )

    def refused_answer(self, subscription: str, error: ApiError) -> ApiError:
        """The failed line's error for the run that got ``error`` (a 401): ARM's answer, with
        the fix when only this subscription is refused."""
        return self._refused.get(subscription.casefold(), error)

    def all_refused(self, subscriptions: Iterable[str]) -> ApiError | None:
        """When every subscription of the batch was refused: the first refusal (no subscription
        could authenticate)."""
        keys = {subscription.casefold() for subscription in subscriptions}
        if not keys or not keys <= self._refused.keys():
            return None
        return next(iter(self._refused.values()))

    def unreachable_error(self, *, not_sent: int) -> UnreachableError | None:
        if self.unreachable is None:
            return None
        return UnreachableError(
            f"the endpoint never answered ({self.unreachable.code}: {self.unreachable.message});"
            f" stopped early, {not_sent} runs not sent: rerun with --resume once it answers"
            "\nHINT: check --endpoint / BATCHRUN_ENDPOINT (host and port), DNS, the firewall, "
            "and for TLS the CA bundle (SSL_CERT_FILE)"
        )

    def _accepted_elsewhere(self, key: str, sent_at: float) -> bool:
        return any(at >= sent_at for other, at in self._accepted_sent_at.items() if other != key)


def _explained(subscription: str, error: ApiError) -> ApiError:
    if is_wrong_tenant(error):
        tenant = tenant_named(error)
        named = f"tenant {tenant}" if tenant else "its tenant"
        setting = f"AZURE_TENANT_ID={tenant}" if tenant else "AZURE_TENANT_ID to its tenant"
        message = (
            f"subscription {subscription} belongs to another tenant than the token "
            f"({error.message}); its runs are not sent. HINT: they need a token of {named}: "
            f"--resume this report with {setting} (or a credential of that tenant); only "
            "these runs are left to send"
        )
    else:
        message = (
            f"ARM refused the token for subscription {subscription} only (other "
            f"subscriptions accepted it since): {error.message}; its runs are not sent. HINT: "
            "give the identity access to this subscription, then --resume this report"
        )
    return ApiError(
        status=error.status,
        code=error.code,
        message=message,
        request_id=error.request_id,
        correlation_id=error.correlation_id,
        transient=False,
        sent=False,
    )
