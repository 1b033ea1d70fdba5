"""The conflicts pages: list, one conflict with its resolution, and each connection's conflict policy."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from syncapp.exceptions import ValidationError
from syncapp.forms import ConflictPolicyForm
from syncapp.models import SyncConflict, Tenant
from syncapp.selectors.conflicts import conflict_get, conflict_list
from syncapp.selectors.connections import connection_list
from syncapp.services.conflicts import conflict_pick, conflict_restore
from syncapp.services.connections import connection_conflict_policy_set
from syncapp.views.tenancy import current_tenant

PAGE_SIZE = 50


def _conflict(tenant: Tenant, conflict_id: int) -> SyncConflict:
    conflict = conflict_get(tenant=tenant, conflict_id=conflict_id)
    if conflict is None:
        raise Http404("No such conflict.")
    return conflict


def _render_list(request, tenant, *, show: str, forms=None, status=200) -> HttpResponse:
    conflicts = conflict_list(tenant=tenant, open_only=show == "open")
    page = Paginator(conflicts, PAGE_SIZE).get_page(request.GET.get("page"))
    forms = forms or {}
    policy_forms = [
        forms.get(connection.pk) or ConflictPolicyForm(connection=connection)
        for connection in connection_list(tenant_slug=tenant.slug)
    ]
    context = {"page": page, "show": show, "policy_forms": policy_forms}
    return render(request, "syncapp/conflicts/list.html", context, status=status)


@login_required
@require_GET
def conflict_index(request: HttpRequest) -> HttpResponse:
    show = "all" if request.GET.get("show") == "all" else "open"
    return _render_list(request, current_tenant(request), show=show)


@login_required
@require_GET
def conflict_detail(request: HttpRequest, conflict_id: int) -> HttpResponse:
    conflict = _conflict(current_tenant(request), conflict_id)
    return render(request, "syncapp/conflicts/detail.html", {"conflict": conflict})


@login_required
@require_POST
def conflict_restore_view(request: HttpRequest, conflict_id: int) -> HttpResponse:
    conflict = _conflict(current_tenant(request), conflict_id)
    try:
        conflict_restore(conflict=conflict, user=request.user)
    except ValidationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Restored {conflict.field} to '{conflict.losing_value}'.")
    return redirect("syncapp:conflict-detail", conflict_id=conflict.pk)


@login_required
@require_POST
def conflict_pick_view(request: HttpRequest, conflict_id: int) -> HttpResponse:
    conflict = _conflict(current_tenant(request), conflict_id)
    try:
        conflict_pick(conflict=conflict, winner=request.POST.get("winner", ""), user=request.user)
    except ValidationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Kept the {conflict.get_winner_display()}'s value of {conflict.field}.")
    return redirect("syncapp:conflict-detail", conflict_id=conflict.pk)


@login_required
@require_POST
def connection_policy(request: HttpRequest, connection_id: int) -> HttpResponse:
    tenant = current_tenant(request)
    connection = connection_list(tenant_slug=tenant.slug).filter(pk=connection_id).first()
    if connection is None:
        raise Http404("No such connection.")
    form = ConflictPolicyForm(request.POST, connection=connection)
    if form.is_valid():
        try:
            connection_conflict_policy_set(
                connection=connection,
                strategy=form.cleaned_data["conflict_strategy"],
                field_priorities=form.field_priorities(),
            )
        except ValidationError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Conflict strategy of {connection.provider}:{connection.account_id} saved.")
            return redirect("syncapp:conflict-list")
    return _render_list(request, tenant, show="open", forms={connection.pk: form}, status=400)
