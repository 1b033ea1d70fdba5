"""The tenant a signed-in person works in, kept in their session: every query of a page is scoped to it."""

from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from syncapp.exceptions import StaleTenantPage
from syncapp.models import CrmConnection, Tenant
from syncapp.selectors.status import connection_get_for_tenant
from syncapp.selectors.tenants import tenants_for_user
from syncapp.tenancy import PAGE_TENANT_FIELD, SESSION_TENANT, session_tenant, session_tenant_choose


def current_tenant(request: HttpRequest) -> Tenant:
    """Return the session's current tenant; a signed-in person who belongs to none gets a 403.

    A POST from a page rendered for another tenant (switched since in another tab) raises StaleTenantPage,
    which ``syncapp.middleware`` turns into a 409 page: nothing is applied to the wrong tenant. A POST
    without the page's tenant (an API-like client) is taken for the current tenant.
    """
    tenant = tenant_current_or_none(request)
    if tenant is None:
        raise PermissionDenied("You are not a member of any tenant.")
    if request.method == "POST" and PAGE_TENANT_FIELD in request.POST:
        posted = request.POST[PAGE_TENANT_FIELD]
        if posted != str(tenant.pk):
            # Matched as text against the user's own tenants: any posted junk is just "another tenant".
            names = {str(pk): name for pk, name in tenants_for_user(user=request.user).values_list("pk", "name")}
            raise StaleTenantPage(page_tenant_name=names.get(posted), current=tenant)
    return tenant


def tenant_connection_or_404(request: HttpRequest, connection_id: int) -> CrmConnection:
    """The current tenant's connection with this id; any other id, another tenant's included, is a 404."""
    connection = connection_get_for_tenant(tenant=current_tenant(request), connection_id=connection_id)
    if connection is None:
        raise Http404("No such connection.")
    return connection


def tenant_current_or_none(request: HttpRequest) -> Tenant | None:
    """The session's current tenant (see ``syncapp.tenancy.session_tenant``), forgetting a choice no longer valid."""
    chosen = request.session.get(SESSION_TENANT)
    tenant = session_tenant(request)
    if chosen is not None and (tenant is None or tenant.pk != chosen):
        # The membership was removed: forget the choice, so adding it back does not switch silently.
        del request.session[SESSION_TENANT]
    return tenant


@login_required
@require_POST
def tenant_switch(request: HttpRequest) -> HttpResponse:
    """Make the posted tenant (one the user is a member of) current, and go back to the page."""
    try:
        tenant_id = int(request.POST.get("tenant", ""))
    except ValueError:
        raise Http404("No such tenant.") from None
    tenant = tenants_for_user(user=request.user).filter(pk=tenant_id).first()
    if tenant is None:
        raise Http404("No such tenant.")
    session_tenant_choose(request, tenant)
    messages.success(request, f"You are now working in {tenant.name}.")
    return redirect(_back_to(request))


def _back_to(request: HttpRequest) -> str:
    """The page the switch was made on, if it is this site's and names no object of the old tenant."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        try:
            match = resolve(urlsplit(target).path)
        except Resolver404:
            match = None
        # A URL with parameters names one contact, conflict or connection, which the new tenant does not have.
        if match is not None and not match.kwargs:
            return target
    return reverse("syncapp:status")
