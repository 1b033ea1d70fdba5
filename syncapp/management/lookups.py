"""What a command names by its arguments, found through the selectors, or a CommandError that says so."""

from django.core.management.base import CommandError

from syncapp.models import CrmConnection, Tenant
from syncapp.selectors.connections import connection_get
from syncapp.selectors.tenants import tenant_get


def tenant_or_error(slug: str) -> Tenant:
    tenant = tenant_get(slug=slug)
    if tenant is None:
        raise CommandError(f"No tenant '{slug}'.")
    return tenant


def connection_or_error(connection_id: int) -> CrmConnection:
    connection = connection_get(connection_id=connection_id)
    if connection is None:
        raise CommandError(f"No connection {connection_id}.")
    return connection
