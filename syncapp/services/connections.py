"""Connections: creation, credentials, and the one-sync-at-a-time lock."""

import re
import secrets
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from syncapp.engine import FIELDS, STRATEGIES
from syncapp.exceptions import LockLostError, SyncAlreadyRunningError, ValidationError
from syncapp.models import CrmConnection, Tenant
from syncapp.providers import get_adapter_class, provider_ids
from syncapp.providers.base.api_base import api_base_validate
from syncapp.services.schedules import connection_schedule_update

# What an HTTP header can carry: a pasted token outside it is a paste mistake, refused before any call.
_TOKEN = re.compile(r"[\x21-\x7e]+")


def api_base_override_allowed(user) -> bool:
    """Whether ``user`` may point a connection at another base URL than its CRM's (a sandbox).

    Tokens and the OAuth client secret go to that URL and its answers reach the page, so it is off
    unless CRM_API_BASE_OVERRIDE turns it on, and then for staff only.
    """
    return settings.CRM_API_BASE_OVERRIDE and user.is_staff


@sensitive_variables("credentials")
def connection_create(
    *,
    tenant: Tenant,
    provider: str,
    account_id: str,
    credentials: dict,
    api_base_url: str = "",
    conflict_strategy: str = "",
) -> CrmConnection:
    """Connect a CRM account to a tenant. Credentials are stored encrypted."""
    if provider not in provider_ids():
        raise ValidationError(f"Unknown provider '{provider}'; choose one of: {', '.join(provider_ids())}.")
    account_id = str(account_id).strip()
    if not account_id:
        raise ValidationError("The CRM account id is required.")
    strategy = conflict_strategy or settings.CONFLICT_RESOLUTION_STRATEGY
    if strategy not in STRATEGIES:
        raise ValidationError(f"Unknown conflict strategy '{strategy}'; choose one of: {', '.join(STRATEGIES)}.")
    api_base_url = api_base_validate(api_base_url, provider=provider)
    existing = CrmConnection.objects.filter(provider=provider, account_id=account_id).first()
    if existing is not None:
        if existing.tenant_id == tenant.pk and existing.status == CrmConnection.Status.DISCONNECTED:
            return connection_reconnect(connection=existing, credentials=credentials, api_base_url=api_base_url)
        raise ValidationError(f"{provider} account {account_id} is already connected.")
    connection = CrmConnection(
        tenant=tenant,
        provider=provider,
        account_id=account_id,
        api_base_url=api_base_url,
        conflict_strategy=strategy,
    )
    connection.credentials = credentials
    connection.save()
    connection_schedule_update(connection=connection)
    return connection


@sensitive_variables("token", "credentials")
def connection_connect_token(
    *, tenant: Tenant, provider: str, token: str, account_id: str = "", api_base_url: str = ""
) -> CrmConnection:
    """Connect (or reconnect) a CRM account with a pasted private-app / API token.

    The CRM is asked which account the token opens, so a wrong or revoked token is refused here,
    not at the first sync; where it can say, a typed ``account_id`` is optional and must match.
    """
    if provider not in provider_ids():
        raise ValidationError(f"Unknown provider '{provider}'; choose one of: {', '.join(provider_ids())}.")
    token, typed = token.strip(), str(account_id).strip()
    if not token:
        raise ValidationError("Paste the private-app / API token.")
    if not _TOKEN.fullmatch(token):
        raise ValidationError("The token may hold only visible ASCII characters (no spaces); paste it again.")
    api_base_url = api_base_validate(api_base_url, provider=provider)
    found = get_adapter_class(provider).token_account_id(token=token, api_base_url=api_base_url)
    if found and typed and found != typed:
        raise ValidationError(f"This token opens {provider} account {found}, not {typed}.")
    return connection_create(
        tenant=tenant,
        provider=provider,
        account_id=found or typed,
        credentials={"access_token": token},
        api_base_url=api_base_url,
    )


@sensitive_variables("credentials")
def connection_reconnect(*, connection: CrmConnection, credentials: dict, api_base_url: str = "") -> CrmConnection:
    """Give a disconnected connection new credentials, make it active and poll it again.

    Its history (runs, links, conflicts) is what it was when it was disconnected.
    """
    connection.credentials = credentials
    connection.api_base_url = api_base_validate(api_base_url, provider=connection.provider)
    connection.status, connection.status_message = CrmConnection.Status.ACTIVE, ""
    connection.save(update_fields=["credentials_encrypted", "api_base_url", "status", "status_message", "updated_at"])
    connection_schedule_update(connection=connection)
    return connection


def connection_disconnect(*, connection: CrmConnection) -> bool:
    """Stop syncing and polling the connection and forget its credentials; return whether it was connected.

    Its runs, links and conflicts are kept, so reconnecting the same account (a new token or OAuth)
    carries on where it stopped.
    """
    if connection.status == CrmConnection.Status.DISCONNECTED:
        return False
    connection.credentials = {}
    connection.status, connection.status_message = CrmConnection.Status.DISCONNECTED, ""
    connection.save(update_fields=["credentials_encrypted", "status", "status_message", "updated_at"])
    connection_schedule_update(connection=connection)
    return True


def connection_status_set(*, connection: CrmConnection, status: str, message: str = "", until=None) -> None:
    """Record what the last run learned about the connection (a paused one stays paused)."""
    if connection.status in (CrmConnection.Status.PAUSED, CrmConnection.Status.DISCONNECTED):
        return
    if (connection.status, connection.status_message, connection.rate_limited_until) == (status, message, until):
        return
    connection.status, connection.status_message, connection.rate_limited_until = status, message, until
    connection.save(update_fields=["status", "status_message", "rate_limited_until", "updated_at"])


def connection_pause(*, connection: CrmConnection) -> bool:
    """Stop syncing the connection and polling it; return whether it was paused now.

    App changes still reach its outbox, so it catches up once resumed. A disconnected or already
    paused connection is left as it is.
    """
    if connection.status in (CrmConnection.Status.PAUSED, CrmConnection.Status.DISCONNECTED):
        return False
    connection.status, connection.status_message = CrmConnection.Status.PAUSED, ""
    connection.save(update_fields=["status", "status_message", "updated_at"])
    connection_schedule_update(connection=connection)
    return True


def connection_resume(*, connection: CrmConnection) -> bool:
    """Make a paused connection active and poll it again; return whether it was paused."""
    if connection.status != CrmConnection.Status.PAUSED:
        return False
    connection.status, connection.status_message = CrmConnection.Status.ACTIVE, ""
    connection.save(update_fields=["status", "status_message", "updated_at"])
    connection_schedule_update(connection=connection)
    return True


def connection_delete(*, connection: CrmConnection) -> None:
    """Delete a connection with its links, runs and outbox, and stop polling it."""
    connection.status = CrmConnection.Status.DISCONNECTED
    connection_schedule_update(connection=connection)  # a disconnected connection has no schedule
    connection.delete()


class ConnectionLock:
    """A lease on a connection stored in its own row: one conditional UPDATE takes it.

    Works the same on SQLite and PostgreSQL, and a worker killed mid-run leaves a lease that
    simply expires after ``SYNC_LOCK_TTL`` seconds.
    """

    def __init__(self, connection: CrmConnection):
        self.connection_id = connection.pk
        self.owner = secrets.token_hex(16)

    def _expiry(self):
        return timezone.now() + timedelta(seconds=settings.SYNC_LOCK_TTL)

    def acquire(self) -> None:
        taken = (
            CrmConnection.objects.filter(pk=self.connection_id)
            .filter(Q(lock_expires_at__isnull=True) | Q(lock_expires_at__lt=timezone.now()))
            .update(lock_owner=self.owner, lock_expires_at=self._expiry())
        )
        if not taken:
            raise SyncAlreadyRunningError(f"A sync is already running for connection {self.connection_id}.")

    def renew(self) -> None:
        """Extend the lease; raise if another sync has taken it meanwhile."""
        kept = CrmConnection.objects.filter(pk=self.connection_id, lock_owner=self.owner).update(
            lock_expires_at=self._expiry()
        )
        if not kept:
            raise LockLostError(f"Connection {self.connection_id}'s sync lock expired and was taken over.")

    def release(self) -> None:
        CrmConnection.objects.filter(pk=self.connection_id, lock_owner=self.owner).update(
            lock_owner="", lock_expires_at=None
        )


@contextmanager
def connection_lock(connection: CrmConnection):
    lock = ConnectionLock(connection)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


def conflict_policy_validate(*, strategy: str, field_priorities: dict | None) -> dict[str, str]:
    """Return the field priorities if ``strategy`` and they make a valid policy; raise ValidationError if not."""
    if strategy not in STRATEGIES:
        raise ValidationError(f"Unknown conflict strategy '{strategy}'; choose one of: {', '.join(STRATEGIES)}.")
    if not isinstance(field_priorities or {}, dict):
        raise ValidationError('Field priorities must be an object such as {"phone": "app"}.')
    priorities = dict(field_priorities or {})
    unknown = set(priorities) - set(FIELDS)
    if unknown:
        raise ValidationError(f"Unknown contact field(s): {', '.join(sorted(unknown))}.")
    bad = sorted(name for name, side in priorities.items() if side not in ("app", "crm"))
    if bad:
        raise ValidationError(f"The owner of {', '.join(bad)} must be 'app' or 'crm'.")
    return priorities


def connection_conflict_policy_set(
    *, connection: CrmConnection, strategy: str, field_priorities: dict[str, str] | None = None
) -> CrmConnection:
    """Set how the connection resolves conflicts; ``field_priorities`` maps a field to "app" or "crm".

    The priorities are kept whatever the strategy (only field_priority reads them). The next sync
    uses the new policy; conflicts already recorded keep the strategy they were resolved by.
    """
    priorities = conflict_policy_validate(strategy=strategy, field_priorities=field_priorities)
    connection.conflict_strategy = strategy
    connection.field_priorities = priorities
    connection.save(update_fields=["conflict_strategy", "field_priorities", "updated_at"])
    return connection
