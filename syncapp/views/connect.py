"""Connect a CRM: the providers with their two ways in (OAuth, or a pasted token), and disconnecting.

Every change is a POST (CSRF-protected) scoped to the signed-in person's tenant. OAuth itself is
started by ``syncapp.views.oauth.oauth_start``; this page only renders its form.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from syncapp.exceptions import SyncError
from syncapp.services.connections import (
    api_base_override_allowed,
    connection_connect_token,
    connection_disconnect,
)
from syncapp.services.oauth import oauth_adapters
from syncapp.views.status import connection_label
from syncapp.views.tenancy import current_tenant, tenant_connection_or_404

TEMPLATE = "syncapp/connect/index.html"
OVERRIDE_REFUSED = "The API base URL cannot be changed here (staff only, where CRM_API_BASE_OVERRIDE is on)."


def connectable_providers() -> list[dict]:
    """The CRMs a person may connect: the configured providers that are real CRMs, i.e. have an OAuth app.

    Test fakes (the ``memory`` provider) are configured adapters too, with a name, but no OAuth config.
    """
    return [
        {"id": provider_id, "name": adapter_class.name or provider_id}
        for provider_id, adapter_class in oauth_adapters().items()
    ]


def _page(request: HttpRequest, *, form: dict | None = None, status: int = 200) -> HttpResponse:
    tenant = current_tenant(request)
    context = {
        "tenant": tenant,
        "providers": connectable_providers(),
        "show_api_base": api_base_override_allowed(request.user),
        "form": form or {},
    }
    return render(request, TEMPLATE, context, status=status)


@login_required
@require_GET
def connect_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


@sensitive_post_parameters("token")
@login_required
@require_POST
def connect_token(request: HttpRequest) -> HttpResponse:
    """Connect (or reconnect a disconnected) CRM account with a pasted private-app / API token."""
    tenant = current_tenant(request)
    provider = request.POST.get("provider", "").strip()
    api_base = request.POST.get("api_base", "").strip()
    # The token is never echoed back into the form.
    form = {
        "provider": provider,
        "account_id": request.POST.get("account_id", "").strip(),
        "api_base": api_base,
        "matched": provider in {entry["id"] for entry in connectable_providers()},
    }
    if not form["matched"]:
        form["error"] = f"Unknown provider '{provider}'."
    elif api_base and not api_base_override_allowed(request.user):
        form["error"] = OVERRIDE_REFUSED
    else:
        try:
            connection = connection_connect_token(
                tenant=tenant,
                provider=provider,
                token=request.POST.get("token", ""),
                account_id=form["account_id"],
                api_base_url=api_base,
            )
        except SyncError as exc:
            form["error"] = str(exc)
        else:
            messages.success(
                request, f"{connection_label(connection)}: connected; the first sync runs at the next poll."
            )
            return redirect("syncapp:status")
    return _page(request, form=form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def connection_disconnect_view(request: HttpRequest, connection_id: int) -> HttpResponse:
    """GET shows a confirmation; POST disconnects (history kept, polling stopped, credentials dropped)."""
    connection = tenant_connection_or_404(request, connection_id)
    if request.method == "GET":
        return render(
            request,
            "syncapp/connect/disconnect_confirm.html",
            {"connection": connection, "name": connection_label(connection)},
        )
    if connection_disconnect(connection=connection):
        messages.success(
            request, f"{connection_label(connection)}: disconnected. Its history is kept; reconnect it any time."
        )
    else:
        messages.warning(request, f"{connection_label(connection)} was already disconnected.")
    return redirect("syncapp:status")
