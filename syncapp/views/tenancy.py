"""The tenant of the signed-in person, for the pages: every query of a page is scoped to it."""

from django.core.exceptions import PermissionDenied

from syncapp.models import Tenant
from syncapp.selectors.tenants import tenant_for_user


def current_tenant(request) -> Tenant:
    """Return the request user's tenant; a signed-in person who belongs to none gets a 403."""
    tenant = tenant_for_user(user=request.user)
    if tenant is None:
        raise PermissionDenied("You are not a member of any tenant.")
    return tenant
