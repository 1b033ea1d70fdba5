"""Registry of CRM adapters: every folder here with an ``adapter.py``, plus ``SYNCAPP_PROVIDERS``.

A folder's adapter is the ``CrmAdapter`` subclass its ``adapter.py`` defines with the folder's name as
``id``, so adding a CRM is one new folder. ``SYNCAPP_PROVIDERS`` (id -> dotted path) adds adapters
from elsewhere, or replaces one of these.
"""

import importlib
import logging
from functools import cache
from pathlib import Path

from django.conf import settings
from django.utils.module_loading import import_string

from syncapp.exceptions import ProviderNotConfiguredError

logger = logging.getLogger(__name__)


@cache
def _folder_adapters() -> dict[str, type]:
    from syncapp.providers.base import CrmAdapter

    adapters = {}
    for path in sorted(adapter for folder in __path__ for adapter in Path(folder).glob("*/adapter.py")):
        module = importlib.import_module(f"{__name__}.{path.parent.name}.adapter")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, CrmAdapter) and value.id == path.parent.name:
                adapters[value.id] = value
    return adapters


def provider_ids() -> list[str]:
    """Return every provider id a connection may use."""
    return sorted({*_folder_adapters(), *settings.SYNCAPP_PROVIDERS})


def get_adapter_class(provider_id: str):
    if provider_id in settings.SYNCAPP_PROVIDERS:
        return import_string(settings.SYNCAPP_PROVIDERS[provider_id])
    try:
        return _folder_adapters()[provider_id]
    except KeyError:
        raise ProviderNotConfiguredError(
            f"No CRM adapter for provider '{provider_id}': no syncapp/providers/{provider_id}/adapter.py "
            "and no entry in settings.SYNCAPP_PROVIDERS."
        ) from None


def get_adapter_classes() -> dict[str, type]:
    """Return the adapter class of every provider id; one that cannot be imported is logged and left out.

    So a broken SYNCAPP_PROVIDERS entry stops only its own connections, not every page that lists CRMs.
    """
    classes = {}
    for provider_id in provider_ids():
        try:
            classes[provider_id] = get_adapter_class(provider_id)
        except ImportError:
            logger.exception("The adapter of provider '%s' cannot be imported (SYNCAPP_PROVIDERS)", provider_id)
    return classes


def get_adapter(connection):
    """Return the adapter for ``connection``."""
    return get_adapter_class(connection.provider)(connection=connection)


def get_webhook_handler(provider_id: str):
    """Return the webhook handler of ``provider_id``; raise ProviderNotConfiguredError if it takes none."""
    handler_class = getattr(get_adapter_class(provider_id), "webhook_handler_class", None)
    if handler_class is None:
        raise ProviderNotConfiguredError(f"Provider '{provider_id}' does not receive webhooks.")
    return handler_class()
