from django import template

from syncapp.selectors.tenants import tenants_for_user
from syncapp.views.tenancy import tenant_current_or_none

register = template.Library()


@register.inclusion_tag("syncapp/tenant_switcher.html", takes_context=True)
def tenant_switcher(context):
    """The page's tenant, and a form to choose another when the user has several."""
    request = context["request"]
    return {
        "request": request,
        "current": tenant_current_or_none(request),
        "tenants": list(tenants_for_user(user=request.user)),
    }
