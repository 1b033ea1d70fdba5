"""One exception hierarchy for the whole app, rooted at SyncError."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from syncapp.models import Tenant


class SyncError(Exception):
    """Base class for every contactsync error."""


class ValidationError(SyncError):
    """Input the app refuses, with a message meant for the person who sent it."""


class SyncAlreadyRunningError(SyncError):
    """Another sync holds this connection's lock."""


class ConnectionInactiveError(SyncError):
    """The connection is paused or disconnected: nothing syncs until it is resumed."""


class LockLostError(SyncError):
    """The sync held its connection's lock past the TTL and another sync took it."""


class CredentialsDecryptionError(SyncError):
    """Stored credentials cannot be decrypted with any configured SYNC_ENCRYPTION_KEY."""


class ProviderError(SyncError):
    """A CRM call failed in a way that retrying will not fix (4xx other than 429)."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class ProviderAuthError(ProviderError):
    """The CRM refused the credentials (401/403): the connection needs attention."""


class TransientProviderError(ProviderError):
    """A CRM call failed in a way that may pass on a later try (429, 5xx, 423, timeout).

    ``retry_after`` is how many seconds the CRM asked us to wait, when it said.
    """

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message, status=status)
        self.retry_after = retry_after


class RateLimitedError(TransientProviderError):
    """The CRM asked us to slow down."""

    def __init__(self, message: str, *, status: int | None = 429, retry_after: float | None = None):
        super().__init__(message, status=status, retry_after=retry_after)


class QuotaExhaustedError(ProviderError):
    """The CRM's daily budget is spent: the connection waits until ``until`` instead of retrying."""

    def __init__(self, message: str, *, until, status: int | None = 429):
        super().__init__(message, status=status)
        self.until = until


class PartialWriteError(SyncError):
    """A write call stopped partway: the first items were answered, the rest were never sent.

    ``results`` holds one ``WriteResult`` for each item answered, in input order (never all of them);
    ``cause`` is the error that stopped the call, such as a spent daily quota. The sync records
    what was written, then fails with ``cause``; the items not sent wait for a later run.
    """

    def __init__(self, results: list, cause: Exception):
        super().__init__(f"Stopped after {len(results)} writes: {cause}")
        self.results = list(results)
        self.cause = cause


class WebhooksNotSupportedError(ValidationError):
    """The provider's API cannot register webhooks (HubSpot's are set once, in the app's settings)."""


class ProviderNotConfiguredError(SyncError):
    """No adapter is registered for a connection's provider id."""


class OAuthError(SyncError):
    """An OAuth step failed (bad state, refused code, token endpoint error); the message is safe to show."""


class WebhookError(SyncError):
    """A webhook delivery was refused; nothing from it is stored."""


class WebhookSignatureError(WebhookError):
    """A webhook's signature is missing, wrong or too old (answered with 401)."""


class WebhookPayloadError(WebhookError):
    """A webhook's body is not the shape the provider documents (answered with 400)."""


class StaleTenantPage(Exception):
    """A form posted from a page rendered for another tenant than the session's current one."""

    def __init__(self, *, page_tenant_name: str | None, current: Tenant):
        self.page_tenant_name = page_tenant_name
        self.current = current
        page = f"tenant {page_tenant_name}" if page_tenant_name else "another tenant"
        super().__init__(
            f"This page was for {page}; you have switched to {current.name} in another tab. "
            "Reload the page and try again."
        )
