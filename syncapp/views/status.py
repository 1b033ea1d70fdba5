"""The status page: one card per connection of the signed-in person's tenant, and its buttons.

Every button is a POST that redirects back to the page with a message, so the page works without
JavaScript; a small script polls ``status.json`` to refresh each card's badge and last run.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from syncapp.exceptions import SyncError
from syncapp.models import CrmConnection
from syncapp.selectors.status import (
    connection_status_json,
    connection_status_list,
    failing_link_get,
    provider_name,
)
from syncapp.services.outbox import outbox_enqueue_links
from syncapp.services.pronouns import connection_setup_pronouns
from syncapp.services.sync import connection_sync_queue
from syncapp.views.tenancy import current_tenant, tenant_connection_or_404


def connection_label(connection: CrmConnection) -> str:
    """How pages and messages name a connection: its CRM and account."""
    return f"{provider_name(connection)} {connection.account_id}"


@login_required
@require_GET
def status_page(request: HttpRequest) -> HttpResponse:
    tenant = current_tenant(request)
    return render(
        request, "syncapp/status/index.html", {"tenant": tenant, "cards": connection_status_list(tenant=tenant)}
    )


@login_required
@require_GET
def connection_status_poll(request: HttpRequest, connection_id: int) -> JsonResponse:
    return JsonResponse(connection_status_json(connection=tenant_connection_or_404(request, connection_id)))


@login_required
@require_POST
def connection_sync_now(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = tenant_connection_or_404(request, connection_id)
    try:
        connection_sync_queue(connection=connection)
    except SyncError as exc:
        messages.error(request, f"{connection_label(connection)}: {exc}")
    else:
        messages.success(request, f"{connection_label(connection)}: sync queued; the card updates when it runs.")
    return redirect("syncapp:status")


@login_required
@require_POST
def connection_pronouns_setup(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = tenant_connection_or_404(request, connection_id)
    try:
        setup = connection_setup_pronouns(
            connection=connection,
            map_existing=request.POST.get("map_existing", "").strip(),
            create=bool(request.POST.get("create")),
        )
    except SyncError as exc:
        messages.error(request, f"{connection_label(connection)}: {exc}")
        return redirect("syncapp:status")
    if setup.state == CrmConnection.PronounsState.CONFIGURED:
        messages.success(request, f"{connection_label(connection)}: {setup.message} The next syncs include pronouns.")
    elif setup.state == CrmConnection.PronounsState.FAILED:
        messages.error(
            request, f"{connection_label(connection)}: the CRM refused to set up the pronouns field: {setup.message}"
        )
    else:
        messages.warning(request, f"{connection_label(connection)}: {setup.message}")
    return redirect("syncapp:status")


@login_required
@require_POST
def failing_record_retry(request: HttpRequest, connection_id: int, link_id: int) -> HttpResponse:
    connection = tenant_connection_or_404(request, connection_id)
    link = failing_link_get(connection=connection, link_id=link_id)
    if link is None:
        raise Http404("No such failing record.")
    if outbox_enqueue_links(links=[link]):
        messages.success(request, f"{link.contact}: queued for {connection_label(connection)} again.")
    else:
        messages.error(request, f"{link.contact}: {connection_label(connection)} is disconnected; nothing to retry.")
    return redirect("syncapp:status")
