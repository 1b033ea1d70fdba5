"""Registry of CRM adapters, read from the explicit ``SYNCAPP_PROVIDERS`` setting (id -> dotted path)."""

from django.conf import settings
from django.utils.module_loading import import_string

from syncapp.exceptions import ProviderNotConfiguredError

# Ids the product supports; an id here without an entry in SYNCAPP_PROVIDERS cannot sync yet.
KNOWN_PROVIDER_IDS = ("hubspot", "pipedrive")


def provider_ids() -> list[str]:
    """Return every provider id a connection may use."""
    return sorted(set(KNOWN_PROVIDER_IDS) | set(settings.SYNCAPP_PROVIDERS))


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
