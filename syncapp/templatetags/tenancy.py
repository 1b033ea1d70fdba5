from django import template
from django.utils.html import format_html

from syncapp.selectors.tenants import tenants_for_user
from syncapp.tenancy import PAGE_TENANT_FIELD, session_tenant

register = template.Library()


@register.inclusion_tag("syncapp/tenant_switcher.html", takes_context=True)
def tenant_switcher(context):
    """The page's tenant, and a form to choose another when the user has several."""
    request = context["request"]
    return {
        "request": request,
        "current": session_tenant(request),
        "tenants": list(tenants_for_user(user=request.user)),
    }


@register.simple_tag(takes_context=True)
def tenant_field(context):
    """The hidden field naming the tenant this page is for; put it in every POST form, next to the CSRF token."""
    tenant = session_tenant(context["request"])
    if tenant is None:
        return ""
    return format_html('<input type="hidden" name="{}" value="{}">', PAGE_TENANT_FIELD, tenant.pk)
