"""Registering a connection's webhooks in its CRM, with credentials generated for that connection."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from django.urls import reverse

from syncapp.exceptions import ValidationError, WebhooksNotSupportedError
from syncapp.models import CrmConnection
from syncapp.providers import get_adapter
from syncapp.providers.base.webhooks import PASSWORD_KEY, USER_KEY

WEBHOOK_USER_PREFIX = "contactsync-"


def webhook_subscription_url(*, connection: CrmConnection, base_url: str) -> str:
    """Return the public URL the CRM delivers ``connection``'s webhooks to; ``base_url`` must be http(s)."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(f"The base URL must be an absolute http(s) URL, not '{base_url}'.")
    if parts.query or parts.fragment:
        raise ValidationError("The base URL must not have a query string or a fragment.")
    path = reverse(
        "syncapp:webhook-connection",
        kwargs={"provider_id": connection.provider, "connection_key": connection.webhook_key},
    )
    return base_url.strip().rstrip("/") + path


def connection_setup_webhooks(*, connection: CrmConnection, base_url: str) -> list[dict]:
    """Register ``connection``'s webhooks in its CRM and return them as the CRM describes them.

    New Basic credentials are generated and stored (encrypted) with the connection's other
    credentials before the CRM learns them, so no delivery arrives with credentials we lack. The
    adapter replaces the webhooks it registered earlier for the same URL, so running this again
    leaves one set, with the new credentials.
    """
    subscription_url = webhook_subscription_url(connection=connection, base_url=base_url)
    adapter = get_adapter(connection)
    if not adapter.registers_webhooks:
        raise WebhooksNotSupportedError(f"Provider '{connection.provider}' does not support registering webhooks.")
    user = f"{WEBHOOK_USER_PREFIX}{secrets.token_urlsafe(9)}"
    password = secrets.token_urlsafe(32)
    connection.credentials = {**connection.credentials, USER_KEY: user, PASSWORD_KEY: password}
    connection.save(update_fields=["credentials_encrypted"])
    return adapter.register_webhooks(subscription_url=subscription_url, user=user, password=password)
