"""Which tenants a signed-in person works in."""

from django.db.models import QuerySet

from syncapp.models import Tenant


def tenants_for_user(*, user) -> QuerySet[Tenant]:
    """The tenants ``user`` is a member of, by name."""
    return Tenant.objects.filter(membership__user=user).order_by("name", "pk")


def tenant_for_user(*, user, tenant_id: int | None = None) -> Tenant | None:
    """Return the tenant ``tenant_id`` if ``user`` is a member of it, else their first tenant by name, or None."""
    tenants = tenants_for_user(user=user)
    chosen = tenants.filter(pk=tenant_id).first() if tenant_id is not None else None
    return chosen or tenants.first()


def tenant_get(*, slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug).first()
