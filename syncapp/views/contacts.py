"""The contacts pages: list and search, create, edit, delete, and one contact's links to the CRMs."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from syncapp.exceptions import ValidationError
from syncapp.forms import ContactForm
from syncapp.models import Contact, Tenant
from syncapp.selectors.contacts import (
    SEARCH_MAX_CHARS,
    SEARCH_MAX_WORDS,
    contact_get_live,
    contact_link_list,
    contact_search,
    contact_search_query,
)
from syncapp.services.contacts import contact_create, contact_delete, contact_update
from syncapp.views.tenancy import current_tenant

PAGE_SIZE = 25


def _contact(tenant: Tenant, contact_id: int) -> Contact:
    contact = contact_get_live(tenant=tenant, contact_id=contact_id)
    if contact is None:
        raise Http404("No such contact.")
    return contact


@login_required
@require_http_methods(["GET"])
def contact_list(request: HttpRequest) -> HttpResponse:
    tenant = current_tenant(request)
    search = contact_search_query(request.GET.get("q", ""))
    if search.cut:
        messages.warning(
            request,
            f"Your search was shortened to {SEARCH_MAX_WORDS} different words and {SEARCH_MAX_CHARS} characters "
            f"at most; the contacts below match “{search.text}”.",
        )
    page = Paginator(contact_search(tenant=tenant, query=search.text), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "syncapp/contacts/list.html", {"tenant": tenant, "page": page, "query": search.text})


@login_required
@require_http_methods(["GET", "POST"])
def contact_new(request: HttpRequest) -> HttpResponse:
    tenant = current_tenant(request)
    form = ContactForm(request.POST or None, tenant_id=tenant.pk)
    if request.method == "POST" and form.is_valid():
        try:
            contact = contact_create(tenant=tenant, values=form.cleaned_data)
        except ValidationError as exc:  # the email was taken between the check and the save
            form.add_error("email", str(exc))
        else:
            messages.success(request, f"Contact {contact} created; it will be pushed to the connected CRMs.")
            return redirect("syncapp:contact-detail", contact_id=contact.pk)
    return render(request, "syncapp/contacts/form.html", {"form": form, "contact": None})


@login_required
@require_http_methods(["GET"])
def contact_detail(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = _contact(current_tenant(request), contact_id)
    rows = contact_link_list(contact=contact)
    context = {"contact": contact, "rows": rows, "pending": sum(row["pending"] for row in rows)}
    return render(request, "syncapp/contacts/detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def contact_edit(request: HttpRequest, contact_id: int) -> HttpResponse:
    tenant = current_tenant(request)
    contact = _contact(tenant, contact_id)
    form = ContactForm(request.POST or None, tenant_id=tenant.pk, contact=contact)
    if request.method == "POST" and form.is_valid():
        try:
            contact_update(contact=contact, values=form.cleaned_data)
        except ValidationError as exc:
            form.add_error("email", str(exc))
        else:
            messages.success(request, f"Contact {contact} saved.")
            return redirect("syncapp:contact-detail", contact_id=contact.pk)
    return render(request, "syncapp/contacts/form.html", {"form": form, "contact": contact})


@login_required
@require_http_methods(["GET", "POST"])
def contact_remove(request: HttpRequest, contact_id: int) -> HttpResponse:
    """GET asks for confirmation; POST soft-deletes (the CRM records are archived by the next push)."""
    contact = _contact(current_tenant(request), contact_id)
    if request.method == "POST":
        contact_delete(contact=contact)
        messages.success(request, f"Contact {contact} deleted; its CRM records will be archived.")
        return redirect("syncapp:contact-list")
    return render(request, "syncapp/contacts/confirm_delete.html", {"contact": contact})
