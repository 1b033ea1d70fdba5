"""Registry of CRM adapters, read from the explicit ``SYNCAPP_PROVIDERS`` setting (id -> dotted path)."""

from django.conf import settings
from django.utils.module_loading import import_string

from syncapp.exceptions import ProviderNotConfiguredError


def provider_ids() -> list[str]:
    """Return every provider id a connection may use."""
    return sorted(settings.SYNCAPP_PROVIDERS)


def get_adapter_class(provider_id: str):
    try:
        dotted_path = settings.SYNCAPP_PROVIDERS[provider_id]
    except KeyError:
        raise ProviderNotConfiguredError(
            f"No CRM adapter is configured for provider '{provider_id}' (settings.SYNCAPP_PROVIDERS)."
        ) from None
    return import_string(dotted_path)


def get_adapter(connection):
    """Return the adapter for ``connection``."""
    return get_adapter_class(connection.provider)(connection=connection)


def get_webhook_handler(provider_id: str):
    """Return the webhook handler of ``provider_id``; raise ProviderNotConfiguredError if it takes none."""
    handler_class = getattr(get_adapter_class(provider_id), "webhook_handler_class", None)
    if handler_class is None:
        raise ProviderNotConfiguredError(f"Provider '{provider_id}' does not receive webhooks.")
    return handler_class()
