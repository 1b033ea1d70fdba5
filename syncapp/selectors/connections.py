"""Connection reads."""

from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from syncapp.exceptions import ProviderNotConfiguredError
from syncapp.models import CrmConnection
from syncapp.providers import get_adapter


def connection_get(*, connection_id: int) -> CrmConnection | None:
    return CrmConnection.objects.filter(pk=connection_id).first()


def connection_by_webhook_key(*, provider: str, webhook_key: str) -> CrmConnection | None:
    """The connection whose per-connection webhook URL carries ``webhook_key``."""
    return CrmConnection.objects.filter(provider=provider, webhook_key=webhook_key).first()


def connection_list(*, tenant_slug: str | None = None) -> QuerySet[CrmConnection]:
    connections = CrmConnection.objects.select_related("tenant").order_by("pk")
    return connections.filter(tenant__slug=tenant_slug) if tenant_slug else connections


def connection_full_sync_due(*, connection: CrmConnection) -> bool:
    """Return whether the next poll should list everything (deletions show only in a full listing)."""
    if connection.last_full_sync_at is None:
        return True
    return timezone.now() - connection.last_full_sync_at > timedelta(milliseconds=settings.FULL_SYNC_INTERVAL)


def connection_webhook_url(*, connection: CrmConnection) -> str | None:
    """Return the URL the CRM should deliver this connection's webhooks to, where one applies."""
    try:
        path = get_adapter(connection).webhook_path()
    except ProviderNotConfiguredError:
        return None
    return settings.PUBLIC_BASE_URL.rstrip("/") + path if path else None


def connection_describe(*, connection: CrmConnection) -> dict:
    """Return the operator-facing summary of a connection (never its credentials)."""
    return {
        "id": connection.pk,
        "tenant": connection.tenant.slug,
        "provider": connection.provider,
        "account_id": connection.account_id,
        "status": connection.status,
        "api_base_url": connection.api_base_url or None,
        "webhook_url": connection_webhook_url(connection=connection),
        "pronouns": connection_pronouns_status(connection=connection),
    }


def connection_pronouns_status(*, connection: CrmConnection) -> str:
    """Return "configured (<key>)", or "pronouns not configured" with what went wrong, if anything."""
    if connection.pronouns_state == CrmConnection.PronounsState.CONFIGURED:
        return f"configured ({connection.pronouns_field_key})"
    if connection.pronouns_message:
        return f"pronouns not configured: {connection.pronouns_message}"
    return "pronouns not configured"
