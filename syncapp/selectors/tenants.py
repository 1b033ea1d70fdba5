"""Which tenant a signed-in person works in."""

from syncapp.models import Tenant


def tenant_for_user(*, user) -> Tenant | None:
    """Return the tenant ``user`` belongs to (the first, by name, if several), or None."""
    return Tenant.objects.filter(membership__user=user).order_by("name", "pk").first()
