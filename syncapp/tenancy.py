"""The current tenant of a signed-in person's session: read by the views and by the page templates alike."""

from django.http import HttpRequest

from syncapp.models import Tenant
from syncapp.selectors.tenants import tenant_for_user

SESSION_TENANT = "syncapp_tenant_id"
# Every POST form carries the tenant its page was rendered for, so a tab left open before a switch in another
# tab cannot apply its form to the new tenant.
PAGE_TENANT_FIELD = "page_tenant"


def session_tenant(request: HttpRequest) -> Tenant | None:
    """The tenant chosen in this session if the user is still a member of it, else their first by name; reads only.

    Kept on the request, so the header and every form of a page name one tenant with one query.
    """
    if not hasattr(request, "_syncapp_session_tenant"):
        chosen = request.session.get(SESSION_TENANT)
        request._syncapp_session_tenant = tenant_for_user(user=request.user, tenant_id=chosen)
    return request._syncapp_session_tenant


def session_tenant_choose(request: HttpRequest, tenant: Tenant) -> None:
    """Make ``tenant`` (one of the user's) the current one of this session."""
    request.session[SESSION_TENANT] = tenant.pk
    request._syncapp_session_tenant = tenant
